"""crosswalk: unique on (source, entity_type, id_type, id_value, entity_id); the crosswalk_conflict view

A secondary identifier that two records of one source share (two Prescrypto patients with one
external_patient_file) used to stay only on the record written last. With entity_id in the key it stays on
both, and the view lists every identifier held by more than one live entity.

The rows already stored are all unique on the four columns, so they are unique on the five: none is lost.

The view reads crosswalk, patient, medic, organization and observation. SQLite refuses to rename a table
while a view names a table that is gone, which is what batch mode's copy of a table does: a later revision
that copies one of those tables on SQLite drops the view first and creates it again afterwards.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_IDENTIFIER = ["source", "entity_type", "id_type", "id_value"]

# Groups with more than one row first (the primary key's index, by its leading columns), then only their
# rows are checked for being live: a soft-deleted entity no longer holds its identifiers.
_VIEW = """
CREATE VIEW crosswalk_conflict AS
SELECT source, entity_type, id_type, id_value, count(*) AS entities, {entity_ids} AS entity_ids
FROM (
    SELECT c.source, c.entity_type, c.id_type, c.id_value, c.entity_id
    FROM crosswalk c
    JOIN (
        SELECT source, entity_type, id_type, id_value
        FROM crosswalk
        GROUP BY source, entity_type, id_type, id_value
        HAVING count(*) > 1
    ) shared
      ON shared.source = c.source AND shared.entity_type = c.entity_type
     AND shared.id_type = c.id_type AND shared.id_value = c.id_value
    WHERE CASE c.entity_type
        WHEN 'patient' THEN (SELECT deleted_at FROM patient WHERE id = c.entity_id)
        WHEN 'medic' THEN (SELECT deleted_at FROM medic WHERE id = c.entity_id)
        WHEN 'organization' THEN (SELECT deleted_at FROM organization WHERE id = c.entity_id)
        WHEN 'observation' THEN (SELECT deleted_at FROM observation WHERE id = c.entity_id)
    END IS NULL
    ORDER BY c.entity_id
) live
GROUP BY source, entity_type, id_type, id_value
HAVING count(*) > 1
"""

# SQLite before 3.44 has no ORDER BY inside an aggregate: group_concat follows the subquery's order.
_ENTITY_IDS = {
    "postgresql": "string_agg(entity_id, ',' ORDER BY entity_id)",
    "sqlite": "group_concat(entity_id, ',')",
}


def _set_key(columns: list[str], added: sa.Column[str] | None = None) -> None:
    """Replace the crosswalk's primary key: ALTER TABLE on PostgreSQL, a copy of the table on SQLite.

    SQLite's 0001 key has no name, so it cannot be dropped and batch mode's copy keeps its columns marked as
    key columns: the column the new key adds (``added``) is marked too, and the copy agrees with its new key.
    """
    name = sa.inspect(op.get_bind()).get_pk_constraint("crosswalk")["name"]
    reflect_args = (added,) if added is not None and not name else ()
    with op.batch_alter_table("crosswalk", schema=None, reflect_args=reflect_args) as batch_op:
        if name:
            batch_op.drop_constraint(name, type_="primary")
        batch_op.create_primary_key("crosswalk_pkey", columns)


def upgrade() -> None:
    _set_key([*_IDENTIFIER, "entity_id"], sa.Column("entity_id", sa.String(length=36), primary_key=True))
    op.execute(_VIEW.format(entity_ids=_ENTITY_IDS[op.get_bind().dialect.name]))


def downgrade() -> None:
    """Back to one entity per identifier: of the entities sharing one, the lowest entity_id keeps it."""
    op.execute("DROP VIEW crosswalk_conflict")
    op.execute(
        """
        DELETE FROM crosswalk
        WHERE EXISTS (
            SELECT 1 FROM crosswalk other
            WHERE other.source = crosswalk.source AND other.entity_type = crosswalk.entity_type
              AND other.id_type = crosswalk.id_type AND other.id_value = crosswalk.id_value
              AND other.entity_id < crosswalk.entity_id
        )
        """
    )
    _set_key(_IDENTIFIER)
