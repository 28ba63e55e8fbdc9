"""Fixtures for the Terraform contract tests: the repository under test and its parsed modules."""

from __future__ import annotations

import pytest

from tfmodel import Module, Repo


@pytest.fixture(scope="session")
def repo() -> Repo:
    return Repo.under_test()


@pytest.fixture(scope="session")
def aws(repo: Repo) -> Module:
    return Module.load(repo.aws)


@pytest.fixture(scope="session")
def azure(repo: Repo) -> Module:
    return Module.load(repo.azure)
