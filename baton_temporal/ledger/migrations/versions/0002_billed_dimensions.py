"""Every billed dimension, the call's time, call intents.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

Additive only: new columns are nullable or default to 0, so rows written before this
revision keep their meaning (no 1-hour writes, no audio, no tool calls, price date
unknown) and a worker of the previous release keeps writing while this one is deployed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COUNTS = (
    "cache_write_1h_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "web_search_requests",
)


def upgrade() -> None:
    # batch_alter_table: SQLite adds columns in place (ADD COLUMN), no table copy.
    with op.batch_alter_table("workflow_step_stats") as batch:
        for name in _COUNTS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("service_tier", sa.String(), nullable=True))
        batch.add_column(sa.Column("speed", sa.String(), nullable=True))
        batch.add_column(sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("prompt_chars", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("price_note", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_step_stats") as batch:
        for name in (
            "price_note",
            "prompt_chars",
            "requested_at",
            "speed",
            "service_tier",
            *reversed(_COUNTS),
        ):
            batch.drop_column(name)
