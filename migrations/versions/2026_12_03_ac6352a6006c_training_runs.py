"""Training runs: every retrain asked for, its trigger and evidence, its outcome and the lock.

Revision ID: ac6352a6006c
Revises: 7d029c3de9bb
Create Date: 2026-12-03 19:08:57.652410+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ac6352a6006c"
down_revision: str | None = "7d029c3de9bb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "trigger",
            sa.Enum(
                "on_demand",
                "schedule",
                "drift",
                name="training_run_trigger",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "running",
                "registered",
                "rejected",
                "failed",
                "skipped",
                name="training_run_state",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("running_lock", sa.Boolean(), nullable=True),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot_key", sa.String(length=256), nullable=True),
        sa.Column("model_id", sa.Uuid(), nullable=True),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["model_versions.id"],
            name=op.f("fk_training_runs_model_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
        sa.UniqueConstraint("running_lock", name=op.f("uq_training_runs_running_lock")),
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_runs_state"), ["state"], unique=False)
        batch_op.create_index(
            "ix_training_runs_trigger_created_at", ["trigger", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_training_runs_trigger_created_at")
        batch_op.drop_index(batch_op.f("ix_training_runs_state"))

    op.drop_table("training_runs")
