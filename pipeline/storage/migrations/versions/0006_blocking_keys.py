"""the declared blocking keys: every live patient queued to have its match keys derived again

The keys changed (``name_dob`` and ``name_street`` in place of ``name_year``; pipeline.identity.keys), so a
patient stored before them is queued with ``rekey`` set: the next link pass writes its new keys and links it
again with the new comparisons. Manual decisions stay, as every link pass keeps them. Nothing else changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_REKEY_ALL = (
    "UPDATE identity_pending SET rekey = true",
    "INSERT INTO identity_pending (patient_id, queued_at, rekey) "
    "SELECT id, CURRENT_TIMESTAMP, true FROM patient WHERE deleted_at IS NULL "
    "AND id NOT IN (SELECT patient_id FROM identity_pending)",
)


def upgrade() -> None:
    for statement in _REKEY_ALL:
        op.execute(statement)


def downgrade() -> None:
    for statement in _REKEY_ALL:  # the older keys are derived again by the older code
        op.execute(statement)
