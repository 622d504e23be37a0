#!/usr/bin/env bash
# Runs a local Synapse with the module and a sample school on SQLite and the
# embedded store, in the foreground until Ctrl-C. State lives in .demo/ (set
# DEMO_DIR to move it, DEMO_PORT to change the port from 8008).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(scripts/setup.sh)
scripts/install-module.sh "$VENV"

DEMO=${DEMO_DIR:-$PWD/.demo}
PORT=${DEMO_PORT:-8008}
BASE=http://127.0.0.1:$PORT
PASSWORD=demo-password
mkdir -p "$DEMO"
DEMO=$(cd "$DEMO" && pwd)

if [ ! -f "$DEMO/homeserver.yaml" ]; then
  secret=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(24))')
  sed -e "s|@DEMO@|$DEMO|g" -e "s|@PORT@|$PORT|g" -e "s|@SECRET@|$secret|g" \
    scripts/demo-homeserver.yaml.in >"$DEMO/homeserver.yaml"
  sed -e "s|@DEMO@|$DEMO|g" scripts/demo-log.yaml.in >"$DEMO/log.yaml"
  "$VENV/bin/python" -m synapse._scripts.generate_signing_key -o "$DEMO/signing.key"
fi

"$VENV/bin/python" -m synapse.app.homeserver -c "$DEMO/homeserver.yaml" &
SYNAPSE_PID=$!
trap 'kill $SYNAPSE_PID 2>/dev/null; wait $SYNAPSE_PID 2>/dev/null' INT TERM EXIT

for _ in $(seq 1 120); do
  curl -fs "$BASE/_matrix/client/versions" >/dev/null 2>&1 && break
  kill -0 $SYNAPSE_PID 2>/dev/null || { echo "demo: Synapse exited; see $DEMO/homeserver.log" >&2; exit 1; }
  sleep 0.5
done

register() { # localpart, --admin|--no-admin
  "$VENV/bin/register_new_matrix_user" -c "$DEMO/homeserver.yaml" -u "$1" -p "$PASSWORD" "$2" "$BASE" \
    >/dev/null 2>&1 || true # already registered on an earlier run
}
register sync --no-admin
register admin --admin
for user in teacher anna ben carla; do register "$user" --no-admin; done

token=$(curl -fs -X POST "$BASE/_matrix/client/v3/login" \
  -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"sync\"},\"password\":\"$PASSWORD\"}" |
  "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -fs -X POST "$BASE/_synapse/client/school_policy/v1/roster" -H "Authorization: Bearer $token" -d '{"users": [
  {"user_id": "@teacher:localhost", "schools": [{"school": "gym-nord", "role": "teacher"}]},
  {"user_id": "@anna:localhost",    "schools": [{"school": "gym-nord", "role": "student"}]},
  {"user_id": "@ben:localhost",     "schools": [{"school": "gym-nord", "role": "student"}]},
  {"user_id": "@carla:localhost",   "schools": [{"school": "gs-sued",  "role": "student"}]}
]}' >/dev/null

cat <<TXT

synapse-school-policy demo is running at $BASE (Ctrl-C stops it; state in $DEMO).

  School gym-nord (messenger: true, announcement room on): @teacher:localhost (teacher),
                                      @anna:localhost, @ben:localhost (pupils)
  School gs-sued  (messenger: false): @carla:localhost (pupil) - cannot log in
  Service user: @sync:localhost     Server admin: @admin:localhost
  Every password: $PASSWORD

Log in with any Matrix client (homeserver $BASE), or with curl:
  curl -s -X POST $BASE/_matrix/client/v3/login -d '{"type":"m.login.password","identifier":{"type":"m.id.user","user":"anna"},"password":"$PASSWORD"}'
  curl -s -X POST $BASE/_matrix/client/v3/login -d '{"type":"m.login.password","identifier":{"type":"m.id.user","user":"carla"},"password":"$PASSWORD"}'
The second is refused with "school_policy": {"rule": "school_not_enabled"}. See what was blocked:
  curl -s -H "Authorization: Bearer $token" $BASE/_synapse/client/school_policy/v1/audit
The module keeps gym-nord's teachers' room and announcement room filled (the
clients of the users above show them within seconds); their ids and what is
pending:
  curl -s -H "Authorization: Bearer $token" $BASE/_synapse/client/school_policy/v1/status
TXT
wait $SYNAPSE_PID
