"""node liveness: the nodes table, and the node holding each quota reservation

Revision ID: 9a4e6b1c2d38
Revises: f6c3d9e2a847
Create Date: 2026-12-01 17:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9a4e6b1c2d38"
down_revision: str | None = "f6c3d9e2a847"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alive_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
    )
    op.create_index(op.f("ix_nodes_alive_until"), "nodes", ["alive_until"])
    op.add_column("quota_reservations", sa.Column("node", sa.String(length=128), nullable=True))
    op.create_index(op.f("ix_quota_reservations_node"), "quota_reservations", ["node"])


def downgrade() -> None:
    with op.batch_alter_table("quota_reservations") as batch:
        batch.drop_index(batch.f("ix_quota_reservations_node"))
        batch.drop_column("node")
    op.drop_table("nodes")
