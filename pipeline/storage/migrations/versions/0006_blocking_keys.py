"""the declared blocking keys: every live patient queued to have its match keys derived again

The keys changed (``name_dob`` and ``name_street`` in place of ``name_year``; pipeline.identity.keys), so a
patient stored before them is queued with ``rekey`` set: the next link pass writes its new keys and links it
again with the new comparisons. Manual decisions stay, as every link pass keeps them. Nothing else changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from pipeline.storage.migrations.rekey import rekey_all

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    rekey_all()


def downgrade() -> None:
    rekey_all()  # the older keys are derived again by the older code
