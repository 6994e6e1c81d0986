"""reserved for issue 12 (telemetry storage): filled by the change that needs it (a no-op until then)

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
