"""vfolder usage ledger

Revision ID: 8d2e4b7c1a90
Revises: 5c1f0a9e2b71
Create Date: 2026-11-25 08:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8d2e4b7c1a90"
down_revision: str | None = "5c1f0a9e2b71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("vfolders") as batch:
        batch.add_column(
            sa.Column("used_bytes", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("file_count", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("vfolders") as batch:
        batch.drop_column("file_count")
        batch.drop_column("used_bytes")
