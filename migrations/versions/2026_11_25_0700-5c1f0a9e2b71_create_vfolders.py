"""create vfolders

Revision ID: 5c1f0a9e2b71
Revises:
Create Date: 2026-11-25 07:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1f0a9e2b71"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("status <> 'deleted'")


def upgrade() -> None:
    op.create_table(
        "vfolders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("volume", sa.String(length=64), nullable=False),
        sa.Column("owner_type", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("cloned_from", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vfolders")),
    )
    op.create_index(op.f("ix_vfolders_volume"), "vfolders", ["volume"])
    op.create_index("ix_vfolders_owner", "vfolders", ["owner_type", "owner_id"])
    op.create_index("ix_vfolders_name_id", "vfolders", ["name", "id"])
    op.create_index(
        "uq_vfolders_owner_live_name",
        "vfolders",
        ["owner_type", "owner_id", "name"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )


def downgrade() -> None:
    op.drop_table("vfolders")
