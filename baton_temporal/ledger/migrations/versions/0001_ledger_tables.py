"""Create workflow_step_stats and workflow_debug_logs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than imported from the models: a migration must keep
creating the same schema after the models have moved on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Surrogate keys: BIGINT on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" is the
# auto-incrementing rowid.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Exact USD: NUMERIC(20,10); on SQLite an integer count of 1e-10 USD (see _schema.Money).
_MONEY = sa.Numeric(20, 10).with_variant(sa.BigInteger(), "sqlite")
_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workflow_step_stats",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("call_key", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("workflow_name", sa.String(), nullable=False),
        sa.Column("step", sa.String(), nullable=False),
        sa.Column("activity_id", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("call_index", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.BigInteger(), nullable=True),
        sa.Column("cost_usd", _MONEY, nullable=True),
        sa.Column("price_model", sa.String(), nullable=True),
        sa.Column("price_version", sa.String(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.UniqueConstraint("call_key", name="uq_workflow_step_stats_call_key"),
    )
    op.create_index(
        "ix_workflow_step_stats_workflow_step", "workflow_step_stats", ["workflow_id", "step"]
    )
    op.create_index(
        "ix_workflow_step_stats_recorded_model", "workflow_step_stats", ["recorded_at", "model"]
    )

    op.create_table(
        "workflow_debug_logs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("step", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("request", _JSON, nullable=True),
        sa.Column("response", _JSON, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_workflow_debug_logs_workflow_id", "workflow_debug_logs", ["workflow_id"])
    op.create_index("ix_workflow_debug_logs_created_at", "workflow_debug_logs", ["created_at"])


def downgrade() -> None:
    op.drop_table("workflow_debug_logs")
    op.drop_table("workflow_step_stats")
