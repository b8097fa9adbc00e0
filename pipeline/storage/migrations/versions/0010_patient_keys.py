"""patient_keys: each patient's match keys as one row, in place of match_key's index by patient

Replacing a patient's keys, and finding what its link pass blocks on, read that one row; every match key then
costs one B-tree insert instead of two (100,000 Prescrypto patients into SQLite without linking: 37 s -> 32 s).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_keys",
        sa.Column("patient_id", sa.String(length=36), nullable=False),
        sa.Column("match_keys", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    listed = (
        "json_agg(json_build_array(key_type, key_value))::text"
        if op.get_bind().dialect.name == "postgresql"
        else "json_group_array(json_array(key_type, key_value))"
    )
    op.execute(
        f"INSERT INTO patient_keys (patient_id, match_keys) "
        f"SELECT patient_id, {listed} FROM match_key GROUP BY patient_id"
    )
    op.drop_index("ix_match_key_patient_id", table_name="match_key")


def downgrade() -> None:
    op.create_index("ix_match_key_patient_id", "match_key", ["patient_id"], unique=False)
    op.drop_table("patient_keys")
