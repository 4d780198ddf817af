"""Model registry: signing keys (private halves encrypted) and signed model versions.

Revision ID: d71666859ff4
Revises: 88658f9cbc8f
Create Date: 2026-12-03 17:04:38.135051+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d71666859ff4"
down_revision: str | None = "88658f9cbc8f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("public_key", name=op.f("uq_signing_keys_public_key")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column(
            "stage",
            sa.Enum(
                "candidate",
                "canary",
                "stable",
                "retired",
                name="model_stage",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("feature_spec_version", sa.Integer(), nullable=False),
        sa.Column("quantization", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("signing_key_id", sa.Uuid(), nullable=False),
        sa.Column("artifact_prefix", sa.String(length=256), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["signing_key_id"],
            ["signing_keys.id"],
            name=op.f("fk_model_versions_signing_key_id_signing_keys"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("label", name=op.f("uq_model_versions_label")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
    op.drop_table("signing_keys")
