#!/usr/bin/env bash
# The Python reference handler side by side with sluice's aggregate handler.
#
#   bash bench/run.sh [compare.py options]   # check equality and print the table
#   bash bench/run.sh --test [pytest args]   # the equality tests only
#
# SLUICE_BIN: the sluice binary (default ~/.cache/sluice-target/release/sluice). The Python
# environment is ~/.cache/sluice-venvs/bench (SLUICE_VENV_DIR overrides the parent directory),
# (re)installed only when requirements.txt changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${SLUICE_VENV_DIR:-$HOME/.cache/sluice-venvs}/bench"
[ -x "$dir/bin/python" ] || python3 -m venv "$dir"
if ! cmp -s "$here/requirements.txt" "$dir/.sluice-requirements"; then
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$dir/.sluice-requirements"
fi
if [ "${1:-}" = "--test" ]; then
    shift
    exec "$dir/bin/python" -m pytest -p no:cacheprovider -q "$here/test_reference.py" "$@"
fi
exec "$dir/bin/python" "$here/compare.py" "$@"
