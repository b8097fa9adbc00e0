"""Local simulators of the source APIs, for the demo, the tests and the benchmarks (see sandbox.app)."""
