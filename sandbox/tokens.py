"""The token each simulated API accepts by default: kept apart so that importing them costs nothing."""

PRESCRYPTO = "sandbox-prescrypto"
PROFILES = "sandbox-profiles"
GAUGES = "sandbox-gauges"
PARTICLE = "sandbox-particle"

BY_KIND = {"prescrypto": PRESCRYPTO, "profiles": PROFILES, "gauges": GAUGES, "particle": PARTICLE}  # the demo's
