"""A real MLflow tracking server for the tracking tests (the `mlflow_server` fixture, offered by tests/conftest.py):
the venv's `mlflow server`, SQLite and artifacts in a temporary folder, on a free port of 127.0.0.1, started once per
session. A server that does not start fails the
tests that need it (no skip: tracking is a feature of this project, and its tests check it against the real thing)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

START_SECONDS = 90  # database migrations, then uvicorn: seconds on two cores, longer on a loaded machine


def free_port() -> int:
    """A port nobody listens on now (the OS's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers_health(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """The tracking URI of a running `mlflow server`; the server (its process group) is ended after the session."""
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@contextlib.contextmanager
def running_mlflow_server(root: Path) -> Iterator[str]:
    """`mlflow server` with its files under `root`, on a free loopback port, while the body runs; yields its URI
    once /health answers (the tests' fixture, and benchmarks/bench_telemetry.py)."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts")]
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        # a session of its own: `mlflow server` starts uvicorn (and workers), ended with it as one group. The GenAI
        # job runner (seven huey consumers) is off: nothing here uses it, and it slows the start on two cores.
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, "MLFLOW_TRACKING_URI": "", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        wait_until_healthy(server, uri, log_path)
        yield uri
    finally:
        end_group(server)


def wait_until_healthy(server: subprocess.Popen, uri: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        if answers_health(uri):
            return
        time.sleep(0.25)
    pytest.fail(f"mlflow server did not answer {uri}/health within {START_SECONDS} s:\n{log_path.read_text()[-3000:]}")


def end_group(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group; after 3 s (or once the leader is gone) SIGKILL to whatever is left."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(3)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(server.pid, signal.SIGKILL)  # uvicorn's workers and the job runner may outlive the leader
    except ProcessLookupError:
        pass
    server.wait(5)
