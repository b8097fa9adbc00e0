"""The token each simulated API accepts by default: kept apart so that importing them costs nothing."""

PRESCRYPTO = "sandbox-prescrypto"
PROFILES = "sandbox-profiles"
GAUGES = "sandbox-gauges"
PARTICLE = "sandbox-particle"
