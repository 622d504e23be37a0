"""A deliberately minimal Matrix client-server API client over urllib.

Every call returns (status, json_body) and never raises on HTTP error statuses,
so tests can assert on refusals (403, M_FORBIDDEN, ...) as easily as on success.
Connection-level failures (server down) do raise, as urllib.error.URLError.
"""

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request

CS = "/_matrix/client/v3"
_txn_ids = itertools.count()


def q(part: str) -> str:
    """Percent-encode one path segment (room IDs contain '!' and ':', aliases '#')."""
    return urllib.parse.quote(part, safe="")


def request(base_url, method, path, body=None, token=None, query=None, timeout=30):
    url = base_url.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:  # 4xx/5xx are answers, not failures
        status, raw = e.code, e.read()
    if not raw:
        return status, {}
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"_raw": raw.decode(errors="replace")}


class Client:
    def __init__(self, base_url: str, user_id: str, token: str):
        self.base_url = base_url
        self.user_id = user_id
        self.token = token

    def __repr__(self):
        return f"Client({self.user_id!r})"

    def request(self, method, path, body=None, query=None, token=None):
        return request(self.base_url, method, path, body, token or self.token, query)

    def create_room(self, **body):
        return self.request("POST", f"{CS}/createRoom", body)

    def invite(self, room_id, user_id):
        return self.request("POST", f"{CS}/rooms/{q(room_id)}/invite", {"user_id": user_id})

    def join(self, room_id):
        return self.request("POST", f"{CS}/join/{q(room_id)}", {})

    def leave(self, room_id):
        return self.request("POST", f"{CS}/rooms/{q(room_id)}/leave", {})

    def send(self, room_id, event_type, content):
        txn = f"t{next(_txn_ids)}"
        return self.request(
            "PUT", f"{CS}/rooms/{q(room_id)}/send/{q(event_type)}/{txn}", content
        )

    def put_state(self, room_id, event_type, state_key, content):
        return self.request(
            "PUT", f"{CS}/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}", content
        )

    def get_state(self, room_id, event_type, state_key=""):
        return self.request(
            "GET", f"{CS}/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}"
        )

    def redact(self, room_id, event_id, reason=None):
        txn = f"t{next(_txn_ids)}"
        body = {"reason": reason} if reason else {}
        return self.request("PUT", f"{CS}/rooms/{q(room_id)}/redact/{q(event_id)}/{txn}", body)

    def upgrade(self, room_id, new_version):
        return self.request("POST", f"{CS}/rooms/{q(room_id)}/upgrade", {"new_version": new_version})

    def members(self, room_id):
        return self.request("GET", f"{CS}/rooms/{q(room_id)}/members")

    def user_directory_search(self, term, limit=50):
        return self.request(
            "POST", f"{CS}/user_directory/search", {"search_term": term, "limit": limit}
        )

    def put_alias(self, alias, room_id):
        return self.request("PUT", f"{CS}/directory/room/{q(alias)}", {"room_id": room_id})

    def set_visibility(self, room_id, visibility):
        return self.request(
            "PUT", f"{CS}/directory/list/room/{q(room_id)}", {"visibility": visibility}
        )

    # -- additions for federation tests ----------------------------------------
    def join_via(self, room_id_or_alias, servers):
        """Join naming the resident servers to join through (needed for a remote
        room we hold no invite for: v12 room IDs carry no server name)."""
        return self.request(
            "POST", f"{CS}/join/{q(room_id_or_alias)}", {},
            query=[("server_name", s) for s in servers],
        )

    def sync(self, since=None, timeout_ms=0, filter=None):
        query = {"timeout": str(timeout_ms)}
        if since:
            query["since"] = since
        if filter is not None:
            query["filter"] = filter if isinstance(filter, str) else json.dumps(filter)
        return request(self.base_url, "GET", f"{CS}/sync", token=self.token, query=query,
                       timeout=timeout_ms / 1000 + 30)

    def messages(self, room_id, direction="b", limit=50, from_token=None):
        query = {"dir": direction, "limit": str(limit)}
        if from_token:
            query["from"] = from_token
        return self.request("GET", f"{CS}/rooms/{q(room_id)}/messages", query=query)

    def joined_rooms(self):
        return self.request("GET", f"{CS}/joined_rooms")

    def wait_for_invite(self, room_id, timeout=30):
        """Poll /sync until `room_id` shows up under rooms.invite; return its invite_state
        events. Raises TimeoutError otherwise."""
        def check():
            status, body = self.sync()
            if status != 200:
                return None
            room = body.get("rooms", {}).get("invite", {}).get(room_id)
            return None if room is None else room.get("invite_state", {}).get("events", [])
        return wait_for(check, timeout, f"invite to {room_id} for {self.user_id}")

    def wait_for_event(self, room_id, predicate, timeout=30):
        """Poll /messages (newest first) until an event satisfying `predicate` appears;
        return it. Raises TimeoutError otherwise."""
        def check():
            status, body = self.messages(room_id)
            if status != 200:
                return None
            return next((e for e in body.get("chunk", []) if predicate(e)), None)
        return wait_for(check, timeout, f"matching event in {room_id} for {self.user_id}")


def wait_for(check, timeout=30, what="condition", interval=0.25):
    """Call check() until it returns something other than None/False; return that.

    Raises TimeoutError after `timeout` seconds (federation is asynchronous, so
    anything observed on the other server has to be waited for)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def register_user(server, localpart, password, admin=False) -> Client:
    """Register via the shared-secret admin API; `server` needs base_url and
    registration_shared_secret (a SynapseServer). Raises if registration fails,
    because every caller needs a working account to proceed."""
    path = "/_synapse/admin/v1/register"
    status, body = request(server.base_url, "GET", path)
    if status != 200:
        raise RuntimeError(f"nonce request failed: {status} {body}")
    nonce = body["nonce"]
    mac = hmac.new(server.registration_shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([
        nonce.encode(), localpart.encode(), password.encode(),
        b"admin" if admin else b"notadmin",
    ]))
    status, body = request(server.base_url, "POST", path, {
        "nonce": nonce, "username": localpart, "password": password,
        "admin": admin, "mac": mac.hexdigest(),
    })
    if status != 200:
        raise RuntimeError(f"registering {localpart} failed: {status} {body}")
    return Client(server.base_url, body["user_id"], body["access_token"])


def login(base_url, user_id_or_localpart, password):
    return request(base_url, "POST", f"{CS}/login", {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id_or_localpart},
        "password": password,
    })
