"""the analyst views: person_summary, patient_latest_observation, care_team, identity_review

Views only: nothing stored changes, and a downgrade drops them. Where the dialects differ (aggregating text in
order, reading a JSON field) each gets its own body; the columns are the same on both.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# One row per live person; "identifiers" is every crosswalk id of its live patients as source:id_type:id_value,
# ordered, comma-separated.
_PERSON_SUMMARY = """
CREATE VIEW person_summary AS
SELECT s.id AS person_id, s.full_name, s.given_name, s.family_name, s.birth_date, s.sex, s.city, s.postal_code,
       (SELECT count(DISTINCT p.source) FROM patient p WHERE p.person_id = s.id AND p.deleted_at IS NULL) AS sources,
       (SELECT count(*) FROM patient p WHERE p.person_id = s.id AND p.deleted_at IS NULL) AS patients,
       {identifiers} AS identifiers,
       s.created_at, s.updated_at
FROM person s
WHERE s.deleted_at IS NULL
"""
_IDENTIFIERS = {
    "sqlite": "(SELECT group_concat(v, ', ') FROM (SELECT i.source || ':' || i.id_type || ':' || i.id_value AS v "
    "FROM person_identifier i WHERE i.person_id = s.id ORDER BY 1))",
    "postgresql": "(SELECT string_agg(i.source || ':' || i.id_type || ':' || i.id_value, ', ' "
    "ORDER BY i.source, i.id_type, i.id_value) FROM person_identifier i WHERE i.person_id = s.id)",
}

# Each person's newest live reading of each code, whichever of its patients it came from.
_LATEST_OBSERVATION = """
CREATE VIEW patient_latest_observation AS
SELECT person_id, patient_id, source, code, value, scale_min, scale_max, recorded_at, notes, observation_id
FROM (
    SELECT p.person_id, o.patient_id, p.source, o.code, o.value, o.scale_min, o.scale_max, o.recorded_at, o.notes,
           o.id AS observation_id,
           row_number() OVER (
               PARTITION BY p.person_id, o.code ORDER BY o.recorded_at DESC NULLS LAST, o.id DESC
           ) AS newest
    FROM observation o
    JOIN patient p ON p.id = o.patient_id
    WHERE o.deleted_at IS NULL AND p.deleted_at IS NULL AND p.person_id IS NOT NULL
) ranked
WHERE newest = 1
"""

# A person's medics (with the medic's own hospital) and hospitals, as the source that names them links them.
_CARE_TEAM = """
CREATE VIEW care_team AS
SELECT p.person_id, pm.patient_id, pm.source, m.id AS medic_id, m.full_name AS medic_name, m.specialty,
       m.organization_id, o.name AS organization_name
FROM patient_medic pm
JOIN patient p ON p.id = pm.patient_id AND p.deleted_at IS NULL AND p.person_id IS NOT NULL
JOIN medic m ON m.id = pm.medic_id AND m.deleted_at IS NULL
LEFT JOIN organization o ON o.id = m.organization_id AND o.deleted_at IS NULL
UNION ALL
SELECT p.person_id, po.patient_id, po.source, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR),
       o.id, o.name
FROM patient_organization po
JOIN patient p ON p.id = po.patient_id AND p.deleted_at IS NULL AND p.person_id IS NOT NULL
JOIN organization o ON o.id = po.organization_id AND o.deleted_at IS NULL
"""

# Open possible matches: the patient and the person it may be, side by side, with the score and the reason.
_IDENTITY_REVIEW = """
CREATE VIEW identity_review AS
SELECT l.id AS link_id, l.score, {reason} AS reason, l.patient_id, p.source, p.person_id AS current_person_id,
       l.person_id AS candidate_person_id,
       (SELECT count(*) FROM patient q WHERE q.person_id = l.person_id AND q.deleted_at IS NULL) AS candidate_patients,
       p.full_name AS patient_name, s.full_name AS candidate_name,
       p.birth_date AS patient_birth_date, s.birth_date AS candidate_birth_date, l.decided_at
FROM identity_link l
JOIN patient p ON p.id = l.patient_id AND p.deleted_at IS NULL
JOIN person s ON s.id = l.person_id AND s.deleted_at IS NULL
WHERE l.status = 'possible_match'
"""
_REASON = {"sqlite": "json_extract(l.evidence, '$.reason')", "postgresql": "l.evidence ->> 'reason'"}

VIEWS = ("person_summary", "patient_latest_observation", "care_team", "identity_review")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(_PERSON_SUMMARY.format(identifiers=_IDENTIFIERS[dialect]))
    op.execute(_LATEST_OBSERVATION)
    op.execute(_CARE_TEAM)
    op.execute(_IDENTITY_REVIEW.format(reason=_REASON[dialect]))


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW {view}")
