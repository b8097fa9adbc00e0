"""What an error response may tell us: a source's body is untrusted text, so only what a list allows is kept.

A 401 that echoes the token, a 422 that quotes the patient it refused, a 400 that repeats a database row: none of
it may reach a log, a terminal or the database. From an error body this keeps

- a vendor message from ``KNOWN_MESSAGES`` ("Invalid Token", "Not found", ..., compared without case or a final
  period; a message that starts with a known one and goes on after a colon keeps the known part only);
- the field NAMES of a validation error, when they are fields the vendor documents name (``FIELD_NAMES``),
  each with the known problems it reports; other names are only counted.

Nothing else: no value, no unknown text, not even an unknown key.

    >>> explain({"message": "Invalid Token"})
    'Invalid Token'
    >>> explain({"errors": {"first_name": ["can't be blank"], "Ana Ruiz 518-03-6125": ["taken"]}})
    "first_name: can't be blank; and 1 other field"
    >>> explain({"detail": "Token tok-123 is not valid for ana@example.org"})
    ''
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Messages the vendor documents show, and the usual ones of the frameworks they run on (Django REST framework,
# Rails): text that says what went wrong without naming anyone.
KNOWN_MESSAGES = frozenset(
    message.casefold().rstrip(".")
    for message in (
        "Invalid Token",
        "invalid continuation token",
        "Token expired",
        "Authentication credentials were not provided.",
        "You do not have permission to perform this action.",
        "You are not authorized to access this patient",
        "You do not have sufficient permissions to assign this hospital",
        "Unauthorized",
        "Forbidden",
        "Not found",
        "Patient not found",
        "Rate limit exceeded",
        "Too Many Requests",
        "Request was throttled.",
        "Bad Request",
        "Unprocessable Entity",
        "Internal Server Error",
        "Service Unavailable",
        "Bad Gateway",
        "Gateway Timeout",
        "invalid request body",
        "Invalid JSON in request body",
        "This field is required.",
        "This field may not be blank.",
        "This field may not be null.",
        "can't be blank",
        "must be a valid date",
        "required",
        "is invalid",
        "has already been taken",
        "Enter a valid email address.",
        "Date has wrong format.",
        "A valid integer is required.",
    )
)

# Every field the five vendor documents name, plus the generic keys of framework error bodies.
FIELD_NAMES = frozenset(
    {
        "active", "address", "address_city", "address_lines", "address_state", "age", "alma_mater", "campaign",
        "cedula_prof", "city", "continuation_token", "created_at", "curp", "date_created", "date_of_birth",
        "doctor_first_name", "doctor_ids", "email", "external_patient_file", "family_name", "female", "field_name",
        "first_name", "gauge_type", "gender", "given_name", "hospital", "hospital_ids", "hospital_name", "id",
        "is_active", "is_admin_membership", "last_name", "last_updated", "location", "name", "notes", "password",
        "patient", "patient_access_medical_care", "patient_address_line_1", "patient_country",
        "patient_date_of_birth", "patient_doctor", "patient_email_address", "patient_first_name", "patient_gender",
        "patient_hospital", "patient_id", "patient_initials", "patient_last_name", "patient_latitude",
        "patient_longitude", "patient_mobile_number", "patient_physical_address", "patient_postal_code",
        "patient_profile", "patient_province", "patient_race", "patient_region", "patient_title", "patient_town",
        "phone", "postal_code", "purpose_of_use", "recorded_at", "scale_max", "scale_min", "specialty",
        "specialty_no", "specialty_verified", "ssn", "state", "street", "telephone", "uid", "unique_id",
        "updated_at", "value", "zip_code", "non_field_errors", "limit", "offset", "page", "page_size",
        "start_date", "end_date",
    }
)  # fmt: skip
_WRAPPERS = ("message", "errors", "detail", "error")
_MAX_FIELDS = 8


def explain(body: Any) -> str:
    """What may be repeated of an error body ('' when nothing may)."""
    if not isinstance(body, Mapping) or not body:
        return ""  # a bare list or string may echo submitted data (emails): not repeated
    for key in _WRAPPERS:
        if key in body:
            said = body[key]
            return field_errors(said) if isinstance(said, Mapping) else known_message(said)
    return field_errors(body)  # DRF field errors: {"field_name": ["This field is required."]}


def known_message(value: Any) -> str:
    """``value`` when it is a known vendor message (or starts with one, then a colon); else ''.

    >>> known_message("You do not have sufficient permissions to assign this hospital: 1")
    'You do not have sufficient permissions to assign this hospital'
    """
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or len(value) > 200:
        return ""
    for text in (value.strip(), value.split(":", 1)[0].strip()):
        if text.casefold().rstrip(".") in KNOWN_MESSAGES:
            return text  # the source's own spelling of a known message
    return ""


def field_errors(errors: Mapping[Any, Any]) -> str:
    """``{"first_name": ["can't be blank"], ...}`` as ``first_name: can't be blank; ...``, documented fields only.

    >>> field_errors({"date_of_birth": ["can't be blank", "must be a valid date"], "last_name": "can't be blank"})
    "date_of_birth: can't be blank, must be a valid date; last_name: can't be blank"
    """
    named: list[str] = []
    others = 0
    for field, problem in errors.items():
        if not isinstance(field, str) or field not in FIELD_NAMES or len(named) >= _MAX_FIELDS:
            others += 1
            continue
        problems = problem if isinstance(problem, list) else [problem]
        said = [known_message(p) for p in problems]
        kept = ", ".join(p for p in said if p)
        named.append(f"{field}: {kept}" if kept else f"{field}: invalid")
    if others:
        named.append(f"and {others} other field{'s' if others > 1 else ''}")
    return "; ".join(named)
