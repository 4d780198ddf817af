"""Desired states: the model each device should run, with a generation per change.

Revision ID: fd161dc4fe07
Revises: d71666859ff4
Create Date: 2026-12-03 18:18:31.150250+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fd161dc4fe07"
down_revision: str | None = "d71666859ff4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desired_states",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("rollout_id", sa.Uuid(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_desired_states_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model_versions.id"],
            name=op.f("fk_desired_states_model_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_desired_states")),
    )
    with op.batch_alter_table("desired_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_desired_states_model_id"), ["model_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("desired_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_desired_states_model_id"))

    op.drop_table("desired_states")
