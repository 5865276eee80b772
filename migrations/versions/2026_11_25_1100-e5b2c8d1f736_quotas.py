"""quotas and reservations

Revision ID: e5b2c8d1f736
Revises: d41e7a9c3b52
Create Date: 2026-11-25 11:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5b2c8d1f736"
down_revision: str | None = "d41e7a9c3b52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quotas",
        sa.Column("scope_type", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.String(length=255), nullable=False),
        sa.Column("volume", sa.String(length=64), nullable=False),
        sa.Column("limit_bytes", sa.BigInteger(), nullable=True),
        sa.Column("limit_files", sa.BigInteger(), nullable=True),
        sa.Column("alert_level", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("last_reconciled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope_type", "scope_id", "volume", name=op.f("pk_quotas")),
    )
    op.create_table(
        "quota_reservations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("vfolder_id", sa.Uuid(), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["vfolder_id"],
            ["vfolders.id"],
            name=op.f("fk_quota_reservations_vfolder_id_vfolders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservations")),
        sa.UniqueConstraint("holder", name=op.f("uq_quota_reservations_holder")),
    )
    op.create_index(op.f("ix_quota_reservations_vfolder_id"), "quota_reservations", ["vfolder_id"])
    op.create_index("ix_quota_reservations_expires", "quota_reservations", ["expires_at"])
    # Per-scope sums of usage: all vfolders of one owner on one volume.
    op.create_index("ix_vfolders_owner_volume", "vfolders", ["owner_type", "owner_id", "volume"])


def downgrade() -> None:
    op.drop_index("ix_vfolders_owner_volume", table_name="vfolders")
    op.drop_table("quota_reservations")
    op.drop_table("quotas")
