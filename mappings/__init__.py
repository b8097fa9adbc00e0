"""Pure functions from a source record to canonical records (no I/O, no clock, no logging)."""
