"""uploads: rename on collision (STORAGE_UPLOAD_COLLISION=rename)

Revision ID: a9d4e6f2c183
Revises: 9a4e6b1c2d38
Create Date: 2026-12-01 17:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a9d4e6f2c183"
down_revision: str | None = "9a4e6b1c2d38"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(
            sa.Column(
                "rename_on_collision", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("rename_on_collision")
