"""dlt's side of benchmarks.versus_dlt: one `rest_api` pipeline run of the Prescrypto patients listing.

    python benchmarks/dlt_load.py --base-url http://127.0.0.1:PORT/prescrypto --destination sqlalchemy \
        --credentials sqlite:////tmp/x/dlt.db --pipelines-dir /tmp/x/pipelines [--page-size 100]

Run by path, as a process of its own, from a scratch directory: it imports dlt and nothing of patientsync, so
its wall time is dlt's alone, start-up included. What it does is what a dlt user would write for this API: an
offset paginator (limit/offset, no total: it stops at the first empty page), the Token header, primary key
``uid`` and ``write_disposition: merge``, loaded by ``pipeline.run``. Running it again on the same
``--pipelines-dir`` and database is the same pipeline merging the same records again.

Prints one JSON line: the rows dlt normalized per table, the number of load packages, and the seconds of each
step of the run (extract, normalize, load) as dlt's trace has them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlt.sources.rest_api.typing import RESTAPIConfig

PIPELINE = "prescrypto_bench"
DATASET = "prescrypto"
RESOURCE = "patients"  # also dlt's table name for it


def source_config(base_url: str, token: str, page_size: int) -> RESTAPIConfig:
    """The `rest_api` source's configuration for the patients listing (a bare JSON list per page)."""
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "api_key", "name": "Authorization", "api_key": f"Token {token}", "location": "header"},
            "paginator": {
                "type": "offset",
                "limit": page_size,
                "offset_param": "offset",
                "limit_param": "limit",
                "total_path": None,
            },
        },
        "resource_defaults": {"primary_key": "uid", "write_disposition": "merge"},
        "resources": [{"name": RESOURCE, "endpoint": {"path": "api/v2/patient/", "data_selector": "$"}}],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="the Prescrypto API root, e.g. http://HOST:PORT/prescrypto")
    parser.add_argument("--token", default="sandbox-prescrypto")
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--destination", choices=("sqlalchemy", "postgres"), required=True)
    parser.add_argument("--credentials", required=True, help="the destination's database URL")
    parser.add_argument("--pipelines-dir", required=True, help="dlt's working directories (state, load packages)")
    parser.add_argument(
        "--create-primary-keys",
        action="store_true",
        help="sqlalchemy destination: declare the primary key in the tables (dlt's default is not to)",
    )
    parser.add_argument("--global-dir", help="dlt's global directory instead of ~/.dlt (or /var/dlt for root)")
    args = parser.parse_args(argv)

    try:
        import dlt
        from dlt.common.runtime import run_context
        from dlt.sources.rest_api import rest_api_source
    except ImportError:
        print("dlt is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    context = run_context.active()
    if args.global_dir and isinstance(context, run_context.RunContext):
        # dlt writes an anonymous id into its global directory even with telemetry off; the default run context
        # takes another directory per instance.
        context._global_dir = args.global_dir

    destination = (
        dlt.destinations.sqlalchemy(credentials=args.credentials, create_primary_keys=args.create_primary_keys)
        if args.destination == "sqlalchemy"
        else dlt.destinations.postgres(credentials=args.credentials)
    )
    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE, destination=destination, dataset_name=DATASET, pipelines_dir=args.pipelines_dir
    )
    info = pipeline.run(rest_api_source(source_config(args.base_url, args.token, args.page_size)))
    info.raise_on_failed_jobs()
    trace = pipeline.last_trace
    assert trace is not None, "a pipeline that ran has a trace"
    normalized = trace.last_normalize_info.row_counts if trace.last_normalize_info else {}
    steps = {
        step.step: (step.finished_at - step.started_at).total_seconds()
        for step in trace.steps
        if step.started_at and step.finished_at
    }
    print(json.dumps({"row_counts": dict(normalized), "load_packages": len(info.load_packages), "steps": steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
