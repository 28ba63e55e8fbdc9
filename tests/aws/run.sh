#!/usr/bin/env bash
# sluice's AWS end-to-end tests: the real Lambda binaries (generate, aggregate, alert) run
# against a moto server through an emulated Lambda Runtime API, plus the harness's self-tests.
#
#   bash tests/aws/run.sh [pytest args...]
#
# Binaries: $SLUICE_LAMBDA_BIN_DIR/<fn>, default ${CARGO_TARGET_DIR:-<repo>/target}/debug/<fn>
# (build them first: `cargo build -p sluice-generate -p sluice-fetch -p sluice-aggregate -p sluice-alert
#  --features sluice-generate/lambda,sluice-fetch/lambda,sluice-aggregate/lambda,sluice-alert/lambda`);
# without them the pipeline tests are skipped (SLUICE_AWS_REQUIRE_BINARIES=1: they fail).
# Virtualenv: ${SLUICE_VENV_DIR:-$HOME/.cache/sluice-venvs}/aws, created and updated here.
# Exit code: pytest's; "no tests collected" (5) is a failure too.
set -uo pipefail
cd "$(dirname "$0")/../.."
VENV="${SLUICE_VENV_DIR:-$HOME/.cache/sluice-venvs}/aws"
REQ=tests/aws/requirements.txt

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { echo "cannot create virtualenv $VENV" >&2; exit 1; }
fi
# Reinstall only when requirements.txt changed since the last successful install.
stamp="$VENV/.sluice-aws-requirements"
if ! cmp -s "$REQ" "$stamp"; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" \
        || { echo "pip install -r $REQ failed" >&2; exit 1; }
    cp "$REQ" "$stamp"
fi

export SLUICE_AWS_STRICT=1  # a missing Python dependency fails instead of skipping
"$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider tests/aws "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "tests/aws: pytest collected no tests" >&2
fi
exit "$rc"
