"""Fixtures for the AWS tests: a moto server, fresh resources per test, and warm Lambda
sandboxes (Runtime API emulator + bootstrap process) whose output is attached to the report of
a failing test.

Run through tests/aws/run.sh, which installs tests/aws/requirements.txt into its own virtualenv
and sets SLUICE_AWS_STRICT=1: there a missing Python dependency is a failure, not a skip.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from aws_deps import require_modules, strict  # noqa: E402
from runtime_api import LambdaProcess  # noqa: E402

FUNCTIONS = ("generate", "fetch", "aggregate", "alert")


def lambda_bin_dir() -> pathlib.Path:
    explicit = os.environ.get("SLUICE_LAMBDA_BIN_DIR")
    if explicit:
        return pathlib.Path(explicit)
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug"


@pytest.fixture
def lambda_binaries():
    """Paths of the generate/fetch/aggregate/alert bootstraps; skips when one is missing
    (SLUICE_AWS_REQUIRE_BINARIES=1 makes that a failure)."""
    d = lambda_bin_dir()
    paths = {fn: d / fn for fn in FUNCTIONS}
    for fn in FUNCTIONS:
        p = paths[fn]
        if not (p.is_file() and os.access(p, os.X_OK)):
            msg = f"Lambda binaries not built: {p}"
            if strict("SLUICE_AWS_REQUIRE_BINARIES"):
                pytest.fail(msg)
            pytest.skip(msg)
    return paths


# ------------------------------------------------------------------------------ moto server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A moto server on 127.0.0.1:<free port> for the session; yields its endpoint URL."""
    require_modules("moto", "boto3")
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    for attempt in range(3):
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + 30
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1) as r:
                    up = r.status == 200
            except OSError:
                pass
            if up:
                break
            time.sleep(0.1)
        if up:
            break
        proc.kill()
        proc.wait()
    else:
        pytest.fail(f"moto server did not start; log:\n{log.read_text(errors='replace')}")
    try:
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def aws(moto_server):
    """boto3 clients (kinesis, s3, sns, sqs, secretsmanager) on the moto server, path-style S3."""
    import aws_helpers

    c = aws_helpers.clients(moto_server)
    c["endpoint"] = moto_server
    return c


@pytest.fixture
def resources(aws):
    """A fresh 2-shard stream, bucket, topic and SQS subscription for one test."""
    import aws_helpers

    return aws_helpers.create_resources(aws, shards=2)


# ------------------------------------------------------------------------- Lambda sandboxes

@pytest.fixture
def start_lambda(request, tmp_path):
    """start_lambda(command, function_name, env) -> LambdaProcess: a warm sandbox, stopped at
    the end of the test; its output is added to the report if the test fails."""
    started: list[LambdaProcess] = []
    request.node._sluice_lambdas = started

    def start(command, function_name, env=None):
        if not isinstance(command, (list, tuple)):
            command = [command]
        proc = LambdaProcess(list(command), function_name, env, log_dir=tmp_path / "lambda")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for proc in getattr(item, "_sluice_lambdas", []):
            report.sections.append((f"sluice lambda {proc.function_name} (pid {proc.proc.pid})", proc.output()))
