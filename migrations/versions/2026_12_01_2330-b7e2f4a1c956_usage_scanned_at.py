"""vfolders.usage_scanned_at: when a scan last checked the usage ledger against the disk

Revision ID: b7e2f4a1c956
Revises: a9d4e6f2c183
Create Date: 2026-12-01 23:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e2f4a1c956"
down_revision: str | None = "a9d4e6f2c183"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("vfolders") as batch:
        batch.add_column(sa.Column("usage_scanned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vfolders") as batch:
        batch.drop_column("usage_scanned_at")
