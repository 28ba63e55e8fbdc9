#!/usr/bin/env bash
# Contract tests between the Terraform modules and the Rust workspace (tests/terraform):
# python-hcl2 parses every .tf file; see tests/terraform/test_contract.py for what is checked.
#
# python-hcl2 gets its own virtualenv (it conflicts with checkov), in
# ${SLUICE_VENV_DIR:-$HOME/.cache/sluice-venvs}/hcl, created on first use.
# Set SLUICE_BIN=/path/to/sluice to also compare the generated schema files with
# `sluice schema --format glue|kusto`. Extra arguments go to pytest.
set -euo pipefail

HCL2_VERSION="8.1.4"
PYTEST_VERSION="9.2.0"
SQLGLOT_VERSION="30.30.0"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SLUICE_VENV_DIR:-${HOME}/.cache/sluice-venvs}/hcl"

installed() {
  "${venv}/bin/python" - "$HCL2_VERSION" "$PYTEST_VERSION" "$SQLGLOT_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("python-hcl2"), version("pytest"), version("sqlglot")) == (sys.argv[1], sys.argv[2], sys.argv[3]) else 1)
PY
}

if [ ! -x "${venv}/bin/python" ] || ! installed; then
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check "python-hcl2==${HCL2_VERSION}" "pytest==${PYTEST_VERSION}" "sqlglot==${SQLGLOT_VERSION}"
fi

cd "${repo_root}"
export PYTHONDONTWRITEBYTECODE=1 # leave no __pycache__ in tests/terraform
exec "${venv}/bin/python" -m pytest -q -p no:cacheprovider tests/terraform "$@"
