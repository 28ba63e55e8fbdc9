"""Shared fixtures for sluice's end-to-end tests: the `sluice` binary and a lake produced by
one real local pipeline run (generate -> local stream -> aggregate -> lake -> alert)."""

import json
import math
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def sluice_binary() -> pathlib.Path:
    explicit = os.environ.get("SLUICE_BIN")
    if explicit:
        return pathlib.Path(explicit)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "sluice"


@pytest.fixture(scope="session")
def sluice():
    path = sluice_binary()
    if not path.exists():
        pytest.fail(f"sluice binary not found at {path}: build it (cargo build -p sluice --features lake) or set SLUICE_BIN")

    def run(*args, check=True, timeout=300, env=None):
        merged = dict(os.environ, **(env or {}))
        proc = subprocess.run(
            [str(path), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=merged
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"sluice {' '.join(map(str, args))} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    return run


@pytest.fixture(scope="session")
def lake(sluice, tmp_path_factory):
    """One pipeline run with all three scenarios, windows flushed at the end so every
    non-late event is in exactly one window of each tumbling size."""
    root = tmp_path_factory.mktemp("lake")
    proc = sluice(
        "run", "--duration", "2s", "--history", "12m", "--rate", "40", "--seed", "7",
        # Incidents every few minutes from the sixth, as the generators planted them before they
        # became hours apart: the tables' tests need anomalies in twelve minutes, every run.
        "--warmup", "6m", "--incident-gap", "5m",
        "--flush", "--quiet", "--quiet-alerts", "--lake", root,
    )
    return {"dir": root, "stderr": proc.stderr}


def parquet_files(root: pathlib.Path, prefix: str):
    return sorted((root / prefix).rglob("*.parquet"))


def outbox(root: pathlib.Path):
    path = root / "_alerts" / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def close(a, b, rel=1e-9):
    """Equal within `rel` (relative) or 1e-9 (absolute); two NULLs are equal, one NULL is not."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
