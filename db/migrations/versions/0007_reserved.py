"""reserved for issue 14 (Grafana read-only role): filled by the change that needs it (a no-op until then)

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
