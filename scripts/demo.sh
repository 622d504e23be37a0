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
for user in teacher anna ben carla david rektor; do register "$user" --no-admin; done

token=$(curl -fs -X POST "$BASE/_matrix/client/v3/login" \
  -d "{\"type\":\"m.login.password\",\"identifier\":{\"type\":\"m.id.user\",\"user\":\"sync\"},\"password\":\"$PASSWORD\"}" |
  "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# The school cloud's message: its users, a one-way course and a two-way team
# with a pupil of a second school (david, of rs-west). The module makes the
# rooms and fills them; nobody runs a sync bot.
curl -fs -X POST "$BASE/_synapse/client/school_policy/v1/roster" -H "Authorization: Bearer $token" -d '{"users": [
  {"user_id": "@teacher:localhost", "schools": [{"school": "gym-nord", "role": "teacher"}]},
  {"user_id": "@anna:localhost",    "schools": [{"school": "gym-nord", "role": "student"}]},
  {"user_id": "@ben:localhost",     "schools": [{"school": "gym-nord", "role": "student"}]},
  {"user_id": "@rektor:localhost",  "schools": [{"school": "gym-nord", "role": "admin"}]},
  {"user_id": "@carla:localhost",   "schools": [{"school": "gs-sued",  "role": "student"}]},
  {"user_id": "@david:localhost",   "schools": [{"school": "rs-west",  "role": "student"}]}
], "groups": [
  {"group": "demo-mathe-7b", "school": "gym-nord", "kind": "course", "name": "Mathe 7b",
   "topic": "Mathematik (one-way: only the teacher posts)", "version": 1,
   "members": [{"user_id": "@teacher:localhost", "role": "moderator"},
               {"user_id": "@anna:localhost", "role": "member"},
               {"user_id": "@ben:localhost", "role": "member"}]},
  {"group": "demo-team-robotik", "school": "gym-nord", "kind": "team", "name": "Robotik-Team",
   "topic": "Team of gym-nord and rs-west (two-way)", "two_way": true, "version": 1,
   "members": [{"user_id": "@teacher:localhost", "role": "moderator"},
               {"user_id": "@anna:localhost", "role": "member"},
               {"user_id": "@david:localhost", "role": "member"}]}
]}' >/dev/null

cat <<TXT

synapse-school-policy demo is running at $BASE (Ctrl-C stops it; state in $DEMO).

  School gym-nord (messenger: true, announcement room on): @teacher:localhost (teacher),
                                      @anna:localhost, @ben:localhost (pupils),
                                      @rektor:localhost (the school's admin)
  School rs-west  (messenger: true):  @david:localhost (pupil)
  School gs-sued  (messenger: false): @carla:localhost (pupil) - cannot log in
  Service user: @sync:localhost     Server admin: @admin:localhost
  Every password: $PASSWORD

The demo's roster message also brought two groups; the module made their rooms:
  "Mathe 7b"      a one-way course: teacher posts, anna and ben read (their composer is disabled)
  "Robotik-Team"  a two-way team: teacher, anna and david - david is a pupil of rs-west,
                  admitted because the team lists him and his school has opted in
See them in a client: open https://app.element.io (or any Matrix client), choose
"Sign in", edit the homeserver to $BASE, and sign in as anna, david or teacher
with the password above; the rooms are there within seconds, already joined.
What each member's state is (in the room, or why not):
  curl -s -H "Authorization: Bearer $token" $BASE/_synapse/client/school_policy/v1/groups/demo-team-robotik

Log in with curl:
  curl -s -X POST $BASE/_matrix/client/v3/login -d '{"type":"m.login.password","identifier":{"type":"m.id.user","user":"anna"},"password":"$PASSWORD"}'
  curl -s -X POST $BASE/_matrix/client/v3/login -d '{"type":"m.login.password","identifier":{"type":"m.id.user","user":"carla"},"password":"$PASSWORD"}'
The second is refused with "school_policy": {"rule": "school_not_enabled"}.

The audit page, as gym-nord's school admin: open
  $BASE/_synapse/client/school_policy/audit/
in a browser and sign in as rektor (password $PASSWORD). It shows what was
blocked at gym-nord and, under "What the module did", every room created and
every member added by the reconciler, with the reason. The same as JSON:
  curl -s -H "Authorization: Bearer $token" "$BASE/_synapse/client/school_policy/v1/audit?kind=action"
The module also keeps gym-nord's teachers' room and announcement room filled;
their ids, the groups and what is pending:
  curl -s -H "Authorization: Bearer $token" $BASE/_synapse/client/school_policy/v1/status
TXT
wait $SYNAPSE_PID
