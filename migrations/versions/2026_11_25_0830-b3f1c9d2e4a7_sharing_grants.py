"""sharing grants and the group mode

Revision ID: b3f1c9d2e4a7
Revises: 8d2e4b7c1a90
Create Date: 2026-11-25 08:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b3f1c9d2e4a7"
down_revision: str | None = "8d2e4b7c1a90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("vfolders") as batch:
        batch.add_column(
            sa.Column("group_mode", sa.String(length=8), server_default="rw", nullable=False)
        )
    op.create_table(
        "vfolder_grants",
        sa.Column("vfolder_id", sa.Uuid(), nullable=False),
        sa.Column("grantee_type", sa.String(length=16), nullable=False),
        sa.Column("grantee_id", sa.String(length=255), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("granted_by", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vfolder_id"],
            ["vfolders.id"],
            name=op.f("fk_vfolder_grants_vfolder_id_vfolders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "vfolder_id", "grantee_type", "grantee_id", name=op.f("pk_vfolder_grants")
        ),
    )
    op.create_index("ix_vfolder_grants_grantee", "vfolder_grants", ["grantee_type", "grantee_id"])


def downgrade() -> None:
    op.drop_table("vfolder_grants")
    with op.batch_alter_table("vfolders") as batch:
        batch.drop_column("group_mode")
