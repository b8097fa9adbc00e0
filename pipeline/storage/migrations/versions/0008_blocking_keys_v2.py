"""new blocking keys (two names and the birth month; the birth date or the postal code beside the street), so
every live patient is queued to have its match keys derived again

A patient stored before them is queued with ``rekey`` set: the next link pass writes its new keys and links it
again with the new comparisons and decisions. Manual decisions stay, as every link pass keeps them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from pipeline.storage.migrations.rekey import rekey_all

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    rekey_all()


def downgrade() -> None:
    rekey_all()  # the older keys are derived again by the older code
