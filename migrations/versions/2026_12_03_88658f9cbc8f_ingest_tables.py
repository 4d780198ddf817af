"""Ingest tables: scored events (anomalies, samples), telemetry windows, dead letters; the
devices' MQTT password hash.

Revision ID: 88658f9cbc8f
Revises: 31f008adf60f
Create Date: 2026-12-03 16:56:46.493564+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "88658f9cbc8f"
down_revision: str | None = "31f008adf60f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("topic_device_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_size", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_dead_letters_reason_id", ["reason", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_dead_letters_topic_device_id"), ["topic_device_id"], unique=False
        )

    op.create_table(
        "scored_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum("anomaly", "sample", name="event_kind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("cluster_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("feature_spec_version", sa.Integer(), nullable=False),
        sa.Column("features", sa.LargeBinary(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("transaction_id", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.String(length=128), nullable=False),
        sa.Column("terminal_id", sa.String(length=128), nullable=False),
        sa.Column("card_token", sa.String(length=128), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("merchant_category", sa.String(length=4), nullable=False),
        sa.Column("transaction_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column(
            "label",
            sa.Enum(
                "confirmed_fraud",
                "false_positive",
                name="event_label",
                native_enum=False,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column(
            "label_source",
            sa.Enum(
                "operator", "chargeback", name="event_label_source", native_enum=False, length=16
            ),
            nullable=True,
        ),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("labelled_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_scored_events_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scored_events")),
        sa.UniqueConstraint(
            "device_id", "event_id", name=op.f("uq_scored_events_device_id_event_id")
        ),
    )
    with op.batch_alter_table("scored_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_scored_events_cluster_id"), ["cluster_id"], unique=False
        )
        batch_op.create_index("ix_scored_events_kind_id", ["kind", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_scored_events_model_version"), ["model_version"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_scored_events_transaction_id"), ["transaction_id"], unique=False
        )

    op.create_table(
        "telemetry_windows",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("cluster_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("feature_spec_version", sa.Integer(), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("flagged", sa.Integer(), nullable=False),
        sa.Column("inference_errors", sa.Integer(), nullable=False),
        sa.Column("model_load_failures", sa.Integer(), nullable=False),
        sa.Column("latency_p50_ms", sa.Float(), nullable=False),
        sa.Column("latency_p95_ms", sa.Float(), nullable=False),
        sa.Column("latency_p99_ms", sa.Float(), nullable=False),
        sa.Column("score_histogram", sa.JSON(), nullable=False),
        sa.Column("outbox", sa.JSON(), nullable=False),
        sa.Column("last_update", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_telemetry_windows_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_windows")),
        sa.UniqueConstraint(
            "device_id", "event_id", name=op.f("uq_telemetry_windows_device_id_event_id")
        ),
    )
    with op.batch_alter_table("telemetry_windows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_telemetry_windows_model_version_sent_at", ["model_version", "sent_at"], unique=False
        )

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mqtt_password_hash", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("mqtt_password_hash")

    with op.batch_alter_table("telemetry_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_telemetry_windows_model_version_sent_at")

    op.drop_table("telemetry_windows")
    with op.batch_alter_table("scored_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scored_events_transaction_id"))
        batch_op.drop_index(batch_op.f("ix_scored_events_model_version"))
        batch_op.drop_index("ix_scored_events_kind_id")
        batch_op.drop_index(batch_op.f("ix_scored_events_cluster_id"))

    op.drop_table("scored_events")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letters_topic_device_id"))
        batch_op.drop_index("ix_dead_letters_reason_id")

    op.drop_table("dead_letters")
