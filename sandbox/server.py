"""Running the sandbox: `serve` in this process, or `running_sandbox` in a child process for tests and benchmarks.

    with running_sandbox(patients=1000) as sandbox:
        httpx.get(sandbox.url("/prescrypto/api/v2/patient/"), headers={"Authorization": "Token sandbox-prescrypto"})
        sandbox.faults([{"path": "/prescrypto/api/v2/patient/", "status": 429, "times": 2, "retry_after": 1}])

A child process, rather than a thread, so that the server's event loop and GIL never compete with the code
under test, and a benchmark measures the client, not the two together.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from sandbox.app import create_app

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def serve(host: str = "127.0.0.1", port: int = 8400, patients: int = 250, medics: int = 40, seed: int = 1) -> None:
    """Serve every simulated API on one port until interrupted."""
    app = create_app(patients=patients, medics=medics, seed=seed)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@dataclass
class SandboxHandle:
    """A running sandbox: its address, and shortcuts to its control routes."""

    base_url: str  # "http://127.0.0.1:54321"
    client: httpx.Client
    process: subprocess.Popen[bytes]  # e.g. to measure the server's own CPU and memory

    def url(self, prefix: str = "") -> str:
        """An absolute URL: `url("/prescrypto")` is a Prescrypto source's `base_url`."""
        return self.base_url + prefix

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params)

    def post(self, path: str, json: Any = None) -> httpx.Response:
        return self.client.post(path, json=json)

    def reset(self, **sizes: int | bool) -> dict[str, int]:
        """New data (`patients=`, `medics=`, `seed=`, `noise=`), no faults, default switches, zero stats."""
        return self._ok(self.client.post("/_sandbox/reset", json=sizes))

    def switches(self, api: str, **values: Any) -> dict[str, Any]:
        """Set switches of one simulated API (`switches("particle", page_size=5)`); returns all of its switches."""
        return self._ok(self.client.post(f"/_sandbox/{api}/switches", json=values))

    def faults(self, rules: list[dict[str, Any]] | dict[str, Any]) -> list[dict[str, Any]]:
        """Add fault rules (see sandbox.faults); returns every rule with its counters."""
        return self._ok(self.client.post("/_sandbox/faults", json=rules))

    def fault_counts(self) -> list[dict[str, Any]]:
        return self._ok(self.client.get("/_sandbox/faults"))

    def clear_faults(self) -> None:
        self._ok(self.client.delete("/_sandbox/faults"))

    def stats(self) -> dict[str, Any]:
        return self._ok(self.client.get("/_sandbox/stats"))

    @staticmethod
    def _ok(response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()


@contextmanager
def running_sandbox(
    patients: int = 250,
    medics: int = 40,
    seed: int = 1,
    port: int = 0,
    host: str = "127.0.0.1",
    startup_timeout: float = 60.0,
) -> Iterator[SandboxHandle]:
    """Start `python -m sandbox` (on a free port when `port` is 0), wait until it answers, stop it on exit."""
    port = port or _free_port(host)
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--host",
        host,
        "--port",
        str(port),
        "--patients",
        str(patients),
        "--medics",
        str(medics),
        "--seed",
        str(seed),
    ]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, cwd=_PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        base_url = f"http://{host}:{port}"
        try:
            with httpx.Client(base_url=base_url, timeout=30.0) as client:
                _wait_until_up(process, client, stderr, startup_timeout)
                yield SandboxHandle(base_url=base_url, client=client, process=process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(process: subprocess.Popen[bytes], client: httpx.Client, stderr: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            stderr.seek(0)
            detail = stderr.read().decode(errors="replace").strip()
            raise RuntimeError(f"the sandbox exited with status {process.returncode}: {detail}")
        try:
            client.get("/_sandbox/stats", timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox did not answer within {timeout:g}s") from None
            time.sleep(0.05)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
