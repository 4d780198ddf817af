"""Rollouts: steps, analyses and a timeline per rollout; scored events indexed by time.

Revision ID: 7d029c3de9bb
Revises: fd161dc4fe07
Create Date: 2026-12-03 19:06:53.065504+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d029c3de9bb"
down_revision: str | None = "fd161dc4fe07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("baseline_model_id", sa.Uuid(), nullable=True),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("target_key", sa.String(length=512), nullable=False),
        sa.Column("active_target_key", sa.String(length=512), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "running",
                "paused",
                "succeeded",
                "rolled_back",
                "aborted",
                name="rollout_state",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("current_step", sa.Integer(), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("target_size", sa.Integer(), nullable=False),
        sa.Column("cohort_size", sa.Integer(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["baseline_model_id"],
            ["model_versions.id"],
            name=op.f("fk_rollouts_baseline_model_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["model_versions.id"], name=op.f("fk_rollouts_model_id_model_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
        sa.UniqueConstraint("active_target_key", name=op.f("uq_rollouts_active_target_key")),
    )
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rollouts_model_id"), ["model_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rollouts_state"), ["state"], unique=False)

    op.create_table(
        "rollout_analyses",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rollout_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_analyses_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_analyses")),
    )
    with op.batch_alter_table("rollout_analyses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rollout_analyses_rollout_id"), ["rollout_id"], unique=False
        )

    op.create_table(
        "rollout_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rollout_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_events_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_events")),
    )
    with op.batch_alter_table("rollout_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rollout_events_rollout_id"), ["rollout_id"], unique=False
        )

    with op.batch_alter_table("scored_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scored_events_transaction_at"), ["transaction_at"], unique=False
        )
        batch_op.create_index(
            "ix_scored_events_kind_scored_at", ["kind", "scored_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("scored_events", schema=None) as batch_op:
        batch_op.drop_index("ix_scored_events_kind_scored_at")
        batch_op.drop_index(batch_op.f("ix_scored_events_transaction_at"))

    with op.batch_alter_table("rollout_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollout_events_rollout_id"))

    op.drop_table("rollout_events")
    with op.batch_alter_table("rollout_analyses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollout_analyses_rollout_id"))

    op.drop_table("rollout_analyses")
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rollouts_state"))
        batch_op.drop_index(batch_op.f("ix_rollouts_model_id"))

    op.drop_table("rollouts")
