"""The fetch-only ceiling: patientsync's own client and reader page the Prescrypto patients listing, decoding
the JSON and writing nothing. The fastest any sync of that listing could go on this machine.

    python -m benchmarks.fetch_only BASE_URL [--page-size 100] [--token sandbox-prescrypto]

benchmarks.throughput calls ``fetch_all`` in its own process; benchmarks.versus_dlt runs this module as a
process, so that its start-up counts as it does for the tools it is compared with. Prints the records read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from connectors.stream import Stream, read_pages
from pipeline.bind import open_client, stream_spec
from pipeline.config import Config, parse

SOURCE = "prescrypto"
STREAM = "patients"
TOKEN = "sandbox-prescrypto"  # the sandbox's (sandbox.prescrypto.DEFAULT_TOKEN, not imported: it loads the server)


def prescrypto_source(base_url: str, page_size: int, token: str = TOKEN, **settings: Any) -> dict[str, Any]:
    """A configuration's entry for one Prescrypto source reading only its patients stream."""
    return {
        "kind": "prescrypto",
        "base_url": base_url,
        "token": token,
        "streams": [STREAM],
        "page_size": page_size,
        **settings,
    }


def make_config(base_url: str, db_url: str, page_size: int, token: str = TOKEN) -> Config:
    """The product's own configuration with that one source."""
    return parse({"database": {"url": db_url}, "sources": {SOURCE: prescrypto_source(base_url, page_size, token)}}, {})


def fetch_all(config: Config) -> int:
    """Page the whole stream with the product's client and reader, decoding JSON and writing nothing."""
    source = config.sources[SOURCE]
    stream = stream_spec(source, STREAM).stream
    assert isinstance(stream, Stream), "the benchmark pages a listing"
    with open_client(SOURCE, source) as client:
        return sum(len(page.new_records) for _, page in read_pages(client, stream, dict(stream.params)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fetch_only", description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="the Prescrypto API root, e.g. http://HOST:PORT/prescrypto")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--token", default=TOKEN)
    args = parser.parse_args(argv)
    print(fetch_all(make_config(args.base_url, "sqlite://", args.page_size, args.token)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
