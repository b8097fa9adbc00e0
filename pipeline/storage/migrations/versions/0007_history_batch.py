"""identity_history.batch: the bulk review decision a row belongs to, so that the whole batch can be undone

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_history") as batch:
        batch.add_column(sa.Column("batch", sa.String(length=40), nullable=True))
        batch.create_index("ix_identity_history_batch", ["batch"])


def downgrade() -> None:
    with op.batch_alter_table("identity_history") as batch:
        batch.drop_index("ix_identity_history_batch")
        batch.drop_column("batch")
