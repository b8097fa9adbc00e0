"""Queue every live patient to have its match keys derived again: what a migration that changes the blocking
keys (pipeline.identity.keys) runs, both ways (the older keys are derived again by the older code). The next
link pass writes the patients' keys and links them again; manual decisions stay, as every link pass keeps them."""

from __future__ import annotations

from alembic import op

_STATEMENTS = (
    "UPDATE identity_pending SET rekey = true",
    "INSERT INTO identity_pending (patient_id, queued_at, rekey) "
    "SELECT id, CURRENT_TIMESTAMP, true FROM patient WHERE deleted_at IS NULL "
    "AND id NOT IN (SELECT patient_id FROM identity_pending)",
)


def rekey_all() -> None:
    for statement in _STATEMENTS:
        op.execute(statement)
