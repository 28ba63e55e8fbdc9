"""Missing Python dependencies: a skip when the AWS tests are collected by another suite's
virtualenv (e.g. `pytest tests`), a failure under tests/aws/run.sh (SLUICE_AWS_STRICT=1)."""

import importlib
import os

import pytest


def strict(var: str) -> bool:
    return os.environ.get(var, "") not in ("", "0", "false", "no")


def require_modules(*names: str) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            msg = f"{name} is not installed ({e}); run tests/aws/run.sh, which installs tests/aws/requirements.txt"
            if strict("SLUICE_AWS_STRICT"):
                pytest.fail(msg, pytrace=False)
            pytest.skip(msg, allow_module_level=True)
