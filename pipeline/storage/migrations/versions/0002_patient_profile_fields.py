"""patient: title, initials, race, latitude, longitude (the profiles API's fields)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("title", sa.String()),
    ("initials", sa.String()),
    ("race", sa.String()),
    ("latitude", sa.Float()),
    ("longitude", sa.Float()),
)


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        for name, type_ in _COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as batch_op:
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
