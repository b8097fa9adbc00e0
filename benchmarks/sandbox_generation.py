"""How long the sandbox takes to generate its synthetic patients at benchmark scale (100,000 by default): the
benchmarks' fixtures must not be what they measure. Printed, never asserted against a time.

    .venv/bin/python -m benchmarks.sandbox_generation [--patients 100000]
"""

from __future__ import annotations

import argparse
import time

from sandbox.people import generate_people
from sandbox.prescrypto import patient_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    args = parser.parse_args()
    generate_people(1, seed=0)  # Faker's pools are built once per process: time the generation itself
    started = time.perf_counter()
    records = patient_records(generate_people(args.patients, seed=1), 1)
    elapsed = time.perf_counter() - started
    unique = len({r["uid"] for r in records})
    print(f"{args.patients:,} patients generated in {elapsed:.2f} s ({unique:,} distinct uids)")
    if unique != args.patients:
        raise SystemExit(f"{args.patients - unique} uids repeat")


if __name__ == "__main__":
    main()
