"""identity: person, identity_link, identity_history, match_key, identity_pending, identity_model;
patient.source, patient.person_id, patient.street and patient.street_number; the person_identifier view

Every live patient already stored is queued for linking with ``rekey`` set: its match keys are derived from
its stored row by the first link pass (``patientsync link``, or the next sync), which gives it a person.
``patient.source`` is filled from the source record each patient landed on; ``street`` and ``street_number``
are filled as each patient's next changed record lands.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_STR = sa.String

_VIEW = """
CREATE VIEW person_identifier AS
SELECT p.person_id, c.source, c.id_type, c.id_value
FROM crosswalk c
JOIN patient p ON p.id = c.entity_id
WHERE c.entity_type = 'patient' AND p.deleted_at IS NULL AND p.person_id IS NOT NULL
"""


def _demographic() -> list[sa.Column[object]]:
    return [
        sa.Column("given_name", _STR(), nullable=True),
        sa.Column("family_name", _STR(), nullable=True),
        sa.Column("full_name", _STR(), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", _STR(length=16), nullable=False),
        sa.Column("email", _STR(), nullable=True),
        sa.Column("phone", _STR(), nullable=True),
        sa.Column("address_line", _STR(), nullable=True),
        sa.Column("city", _STR(), nullable=True),
        sa.Column("state", _STR(), nullable=True),
        sa.Column("postal_code", _STR(), nullable=True),
        sa.Column("country", _STR(), nullable=True),
        sa.Column("curp", _STR(length=18), nullable=True),
        sa.Column("ssn_last4", _STR(length=4), nullable=True),
        sa.Column("title", _STR(), nullable=True),
        sa.Column("initials", _STR(), nullable=True),
        sa.Column("race", _STR(), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("street", _STR(), nullable=True),
        sa.Column("street_number", _STR(), nullable=True),
    ]


def upgrade() -> None:
    op.add_column("patient", sa.Column("street", _STR(), nullable=True))
    op.add_column("patient", sa.Column("street_number", _STR(), nullable=True))
    op.add_column("patient", sa.Column("source", _STR(), nullable=True))
    op.add_column("patient", sa.Column("person_id", _STR(length=36), nullable=True))
    op.create_index(op.f("ix_patient_person_id"), "patient", ["person_id"], unique=False)
    op.create_table(
        "person",
        sa.Column("id", _STR(length=36), nullable=False),
        *_demographic(),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("deleted_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "identity_link",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", _STR(length=36), nullable=False),
        sa.Column("person_id", _STR(length=36), nullable=False),
        sa.Column("status", _STR(length=16), nullable=False),
        sa.Column("origin", _STR(length=8), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("evidence", _JSON, nullable=True),
        sa.Column("decided_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_id", "person_id", name="uq_identity_link_patient_person"),
    )
    op.create_index(op.f("ix_identity_link_person_id"), "identity_link", ["person_id"], unique=False)
    op.create_index(op.f("ix_identity_link_status"), "identity_link", ["status"], unique=False)
    op.create_table(
        "identity_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.Column("patient_id", _STR(length=36), nullable=True),
        sa.Column("person_id", _STR(length=36), nullable=True),
        sa.Column("change", _STR(length=32), nullable=False),
        sa.Column("before", _STR(), nullable=True),
        sa.Column("after", _STR(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("origin", _STR(length=8), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_identity_history_patient_id"), "identity_history", ["patient_id"], unique=False)
    op.create_index(op.f("ix_identity_history_person_id"), "identity_history", ["person_id"], unique=False)
    op.create_table(
        "match_key",
        sa.Column("key_type", _STR(length=16), nullable=False),
        sa.Column("key_value", _STR(), nullable=False),
        sa.Column("patient_id", _STR(length=36), nullable=False),
        sa.PrimaryKeyConstraint("key_type", "key_value", "patient_id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_match_key_patient_id", "match_key", ["patient_id"], unique=False)
    op.create_table(
        "identity_pending",
        sa.Column("patient_id", _STR(length=36), nullable=False),
        sa.Column("queued_at", _TS, nullable=False),
        sa.Column("rekey", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("patient_id"),
    )
    op.create_table(
        "identity_model",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", _JSON, nullable=False),
        sa.Column("trained_at", _TS, nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("version"),
    )
    op.execute("UPDATE patient SET source = (SELECT min(r.source) FROM source_record r WHERE r.entity_id = patient.id)")
    op.execute(
        "INSERT INTO identity_pending (patient_id, queued_at, rekey) "
        "SELECT id, CURRENT_TIMESTAMP, true FROM patient WHERE deleted_at IS NULL"
    )
    op.execute(_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW person_identifier")
    for table in ("identity_model", "identity_pending", "match_key", "identity_history", "identity_link", "person"):
        op.drop_table(table)
    op.drop_index(op.f("ix_patient_person_id"), table_name="patient")
    for column in ("person_id", "source", "street_number", "street"):
        op.drop_column("patient", column)
