"""Source APIs: an HTTP client, paginators, and one module per vendor saying how its streams are listed."""

# Here, not in connectors.client, so that validating a configuration does not import the HTTP stack.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024  # decoded bytes of one response
