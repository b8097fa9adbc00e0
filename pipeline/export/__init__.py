"""Ways out of the canonical database: the FHIR R4 Bulk Data export."""
