"""reserved for issue 15 (outbox, integrations): filled by the change that needs it (a no-op until then)

Revision ID: 0008
Revises: 0007
"""
from collections.abc import Sequence

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
