"""identity_history.operator: who made a manual decision (the console's login or ``--operator``)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_history") as batch:
        batch.add_column(sa.Column("operator", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identity_history") as batch:
        batch.drop_column("operator")
