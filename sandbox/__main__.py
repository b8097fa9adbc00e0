"""`python -m sandbox [--host H] [--port P] [--patients N] [--medics M] [--seed S]`"""

from __future__ import annotations

import argparse

from sandbox.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Serve the simulated source APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8400)
    parser.add_argument("--patients", type=int, default=250, help="synthetic patients (default 250)")
    parser.add_argument("--medics", type=int, default=40, help="synthetic medics (default 40)")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same data")
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, patients=args.patients, medics=args.medics, seed=args.seed)


if __name__ == "__main__":
    main()
