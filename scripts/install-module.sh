#!/usr/bin/env bash
# Builds the C extension and installs the package into the given virtualenv.
# Extra compiler flags come from SSP_EXTRA_CFLAGS (CI adds -Werror).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$1
"$VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation --no-deps \
  --force-reinstall . 2>&1 | grep -v "is ignored: it is neither" >&2 || true
"$VENV/bin/python" -c "import synapse_school_policy._core" \
  || { echo "install-module: the extension did not build; see the compiler output above" >&2; exit 1; }
