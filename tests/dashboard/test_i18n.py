"""Every word of the dashboard exists in French and in English."""

from __future__ import annotations

import re

from dashboard.i18n import EN, FR
from tests.conftest import PROJECT


def test_both_languages_have_the_same_words():
    assert set(FR) - set(EN) == set() and set(EN) - set(FR) == set()


def test_every_key_the_pages_ask_for_exists():
    sources = [PROJECT / "app.py", *(PROJECT / "pages").glob("*.py"), *(PROJECT / "dashboard").glob("*.py")]
    literal = re.compile(r"""\bt\(\s*["']([a-z0-9_]+)["']\s*[,)]""")  # t("key") and t("key", …), not t("wo_" + s)
    used = {key for path in sources for key in literal.findall(path.read_text())}
    assert len(used) > 50  # the scan really sees the pages
    assert sorted(used - set(FR)) == []


def test_every_status_and_severity_has_its_word():
    from db.models import AlertStatus, Severity, WorkOrderStatus

    wanted = ({f"alert_{s.value}" for s in AlertStatus} | {f"wo_{s.value}" for s in WorkOrderStatus}
              | {f"sev_{s.value}" for s in Severity} | {f"status_{s}" for s in ("ok", "watch", "alert", "no_data")})
    assert sorted(wanted - set(FR)) == []
