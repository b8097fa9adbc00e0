"""The steward's console: the review queue, persons and the streams' health in a browser (``patientsync
console``, ``daemon --console-port``)."""
