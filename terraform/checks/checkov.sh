#!/usr/bin/env bash
# Static security checks of the Terraform modules with checkov, offline.
#
# checkov gets its own virtualenv: it conflicts with python-hcl2 (both ship an `hcl2` module)
# and pins its own boto3. The venv lives in ${SLUICE_VENV_DIR:-$HOME/.cache/sluice-venvs}/checkov
# and is created on first use (PyPI must be reachable then); later runs reuse it.
#
# Exit status: non-zero when any check fails. Skips are inline in the resources
# (#checkov:skip=CKV_X:reason), each with its reason.
set -euo pipefail

CHECKOV_VERSION="3.2.533"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${SLUICE_VENV_DIR:-${HOME}/.cache/sluice-venvs}/checkov"

if [ ! -x "${venv}/bin/checkov" ] || ! "${venv}/bin/checkov" --version 2>/dev/null | grep -qx "${CHECKOV_VERSION}"; then
  python3 -m venv "${venv}"
  "${venv}/bin/pip" install --quiet --disable-pip-version-check "checkov==${CHECKOV_VERSION}"
fi

cd "${repo_root}"
# --skip-download: no network lookups of guidelines or policies (it would print a traceback).
exec "${venv}/bin/checkov" -d terraform --framework terraform --skip-download --quiet --compact
