"""upload locks: fencing token and database lease

Revision ID: d41e7a9c3b52
Revises: c7a2d4e8f015
Create Date: 2026-11-25 10:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d41e7a9c3b52"
down_revision: str | None = "c7a2d4e8f015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(
            sa.Column("lock_fence", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("lock_token", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lock_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("lock_expires_at")
        batch.drop_column("lock_token")
        batch.drop_column("lock_fence")
