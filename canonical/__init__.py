"""The canonical model that mappings produce and the pipeline stores; it imports nothing of the project."""
