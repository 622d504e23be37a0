"""Run a real Synapse homeserver as a subprocess for integration tests."""

import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

from .ports import free_port

MODULE_PATH = "synapse_school_policy.SchoolPolicy"

# Effectively "no rate limiting": tests fire many requests in quick succession.
_UNLIMITED = {"per_second": 100000, "burst_count": 100000}
RATE_LIMITS = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_third_party_invite": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
    "rc_profile": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
}


def _tail(path: str, lines: int = 60) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return f"<{path} missing>"


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read(path: str, offset: int = 0) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


MODULE_SAFE_SETTINGS = {
    "user_directory": {"enabled": True, "search_all_users": False},
    "limit_profile_requests_to_users_who_share_rooms": True,
    "require_auth_for_profile_requests": True,
    # Refused at start-up while federation is open; the self-check's warnings
    # keep Synapse's defaults here.
    "allow_profile_lookup_over_federation": False,
}


def stop_process(proc: "subprocess.Popen | None", timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_process(proc)


def kill_process(proc: "subprocess.Popen | None") -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


class SynapseError(RuntimeError):
    pass


# Run with the server's own interpreter (which has `cryptography`, a Synapse
# dependency), so the harness does not need it in the test runner's environment.
_SELF_SIGNED_CERT_SCRIPT = """
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

cert_path, key_path, host = sys.argv[1:4]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(days=1))
    .not_valid_after(now + datetime.timedelta(days=365))
    .add_extension(
        x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ),
        critical=False,
    )
    .sign(key, hashes.SHA256())
)
with open(key_path, "wb") as f:
    f.write(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ))
with open(cert_path, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
"""


class SynapseServer:
    """One Synapse process.

    federation=True makes it able to federate with other such servers on loopback:
    a second, TLS listener (self-signed certificate) serves the federation and key
    APIs on `federation_port`, the server_name defaults to "localhost:<federation_port>"
    (a name with an explicit port: Synapse connects straight to it, with no .well-known
    or SRV lookup; "localhost" resolves via /etc/hosts), certificates of other servers
    are not verified and 127.0.0.1 is allowed as an outbound federation target.

    The client API stays on plain HTTP (`base_url`). Without federation=True nothing
    changes: server_name "school.test", a single HTTP listener.

    Not "127.0.0.1:<port>": Synapse wraps its federation agent in a blocklist check
    for IP-literal server names that ignores ip_range_whitelist, so loopback IP
    literals are always refused unless the whole blocklist is rewritten.
    """

    DEFAULT_SERVER_NAME = "school.test"

    def __init__(
        self,
        workdir,
        server_name: str | None = None,
        module_config=None,
        database: dict | None = None,
        python: str = sys.executable,
        extra_config: dict | None = None,
        env: dict | None = None,
        federation: bool = False,
        extra_listeners: list | None = None,
    ):
        self.workdir = os.path.abspath(str(workdir))
        self.federation = federation
        # Fixed for the object's lifetime, like `port`: the server name embeds it.
        self.federation_port: int | None = free_port() if federation else None
        if server_name is None:
            server_name = (
                f"localhost:{self.federation_port}" if federation else self.DEFAULT_SERVER_NAME
            )
        self.server_name = server_name
        self.module_config = module_config
        self.database = database
        self.python = python
        self.extra_config = extra_config or {}
        self.env = env or {}
        self.extra_listeners = extra_listeners or []
        self.port = free_port()  # fixed for the object's lifetime so restarts keep the URL
        self.registration_shared_secret = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        os.makedirs(self.workdir, exist_ok=True)

    # -- paths ---------------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    @property
    def config_path(self) -> str:
        return self._path("homeserver.yaml")

    @property
    def log_path(self) -> str:
        return self._path("homeserver.log")

    @property
    def output_path(self) -> str:
        return self._path("synapse.out")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def federation_url(self) -> str | None:
        """https:// URL of the federation (TLS) listener, None without federation."""
        if self.federation_port is None:
            return None
        return f"https://127.0.0.1:{self.federation_port}"

    @property
    def tls_certificate_path(self) -> str:
        return self._path("tls.crt")

    @property
    def tls_private_key_path(self) -> str:
        return self._path("tls.key")

    @property
    def signing_key_id(self) -> str:
        """Key ID ("ed25519:a_XXXX") of the server's signing key (exists once configured)."""
        with open(self._path("signing.key")) as f:
            algorithm, version, _ = f.read().split()[:3]
        return f"{algorithm}:{version}"

    def user_id(self, localpart: str) -> str:
        """Full Matrix ID of a user on this server."""
        return f"@{localpart}:{self.server_name}"

    # -- config --------------------------------------------------------------
    def _write_config(self) -> None:
        # JSON is valid YAML, so we avoid depending on a YAML library here.
        log_config = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                    " - %(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": self.log_path,
                    "encoding": "utf8",
                }
            },
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        with open(self._path("log.yaml"), "w") as f:
            json.dump(log_config, f, indent=2)

        if self.database is not None:
            db = {"name": "psycopg2", "args": {**self.database, "cp_min": 1, "cp_max": 5}}
        else:
            db = {"name": "sqlite3", "args": {"database": self._path("homeserver.db")}}

        cfg = {
            "server_name": self.server_name,
            "pid_file": self._path("homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client", "federation"], "compress": False}],
                }
            ],
            "database": db,
            "media_store_path": self._path("media_store"),
            "log_config": self._path("log.yaml"),
            "signing_key_path": self._path("signing.key"),
            "registration_shared_secret": self.registration_shared_secret,
            "report_stats": False,
            "suppress_key_server_warning": True,
            "trusted_key_servers": [],
            "enable_metrics": False,
            **RATE_LIMITS,
        }
        if self.federation:
            self._ensure_tls_certificate()
            cfg["listeners"].append(
                {
                    "port": self.federation_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": True,
                    "x_forwarded": False,
                    # "federation" also mounts the /_matrix/key/v2 server-key API.
                    "resources": [{"names": ["federation"], "compress": False}],
                }
            )
            cfg.update(
                {
                    "tls_certificate_path": self.tls_certificate_path,
                    "tls_private_key_path": self.tls_private_key_path,
                    # Peers present self-signed certificates.
                    "federation_verify_certificates": False,
                    # Loopback is in the default outbound blocklist (which also
                    # governs federation unless federation_ip_range_blacklist is set);
                    # "localhost" resolves to it. ::1 stays blocked: nothing listens there.
                    "ip_range_whitelist": ["127.0.0.1/32"],
                }
            )
        cfg["listeners"].extend(self.extra_listeners)
        if self.module_config is not None:
            cfg["modules"] = [{"module": MODULE_PATH, "config": self.module_config}]
            # The settings the module's start-up self-check requires.
            cfg.update(MODULE_SAFE_SETTINGS)
        cfg.update(self.extra_config)
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)

        if not os.path.exists(self._path("signing.key")):
            subprocess.run(
                [self.python, "-m", "synapse._scripts.generate_signing_key",
                 "-o", self._path("signing.key")],
                check=True, capture_output=True,
            )

    def _ensure_tls_certificate(self) -> None:
        if os.path.exists(self.tls_certificate_path) and os.path.exists(
            self.tls_private_key_path
        ):
            return
        res = subprocess.run(
            [self.python, "-c", _SELF_SIGNED_CERT_SCRIPT,
             self.tls_certificate_path, self.tls_private_key_path, "localhost"],
            capture_output=True, text=True,
        )
        if res.returncode != 0:
            raise SynapseError(f"generating a TLS certificate failed:\n{res.stderr}")

    # -- process control -----------------------------------------------------
    def _spawn(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise SynapseError("Synapse already running")
        self._write_config()
        # Remember where this run's output begins, for start_expect_failure().
        self._offsets = {p: _size(p) for p in (self.log_path, self.output_path)}
        # Append, so output from earlier runs (before a restart) survives for debugging.
        with open(self.output_path, "ab") as out:
            out.write(f"\n===== start {time.strftime('%H:%M:%S')} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [self.python, "-m", "synapse.app.homeserver", "-c", self.config_path],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )

    def _diagnostics(self) -> str:
        return (
            f"--- homeserver.log (tail) ---\n{_tail(self.log_path)}"
            f"--- stdout/stderr (tail) ---\n{_tail(self.output_path)}"
        )

    def _is_up(self) -> bool:
        try:
            with urllib.request.urlopen(
                self.base_url + "/_matrix/client/versions", timeout=2
            ) as r:
                if r.status != 200:
                    return False
        except (urllib.error.URLError, OSError):
            return False
        if self.federation:
            return self._federation_is_up()
        return True

    def _federation_is_up(self) -> bool:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(
                self.federation_url + "/_matrix/federation/v1/version", timeout=2, context=ctx
            ) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 90) -> "SynapseServer":
        self._spawn()
        return self.wait_until_up(timeout)

    def wait_until_up(self, timeout: float = 90) -> "SynapseServer":
        """Wait for an already spawned process to answer; kill it on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SynapseError(
                    f"Synapse exited early with code {self.proc.returncode}\n"
                    + self._diagnostics()
                )
            if self._is_up():
                return self
            time.sleep(0.2)
        self.kill()
        raise SynapseError(f"Synapse not ready after {timeout}s\n" + self._diagnostics())

    def start_expect_failure(self, timeout: float = 60) -> tuple[int, str]:
        """Start a server that should refuse to boot; return (exit code, text), the text
        being this run's homeserver.log plus stdout/stderr (config errors land in the latter).

        Raises if it is still running after `timeout` (it is then killed).
        """
        self._spawn()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SynapseError(
                f"Synapse did not exit within {timeout}s (expected a startup failure)\n"
                + self._diagnostics()
            )
        return code, "\n".join(_read(p, off) for p, off in self._offsets.items())

    def stop(self, timeout: float = 15) -> None:
        stop_process(self.proc, timeout)

    def kill(self) -> None:
        """Hard crash, e.g. to test recovery without a clean shutdown."""
        kill_process(self.proc)

    def restart(self, module_config=None, timeout: float = 90) -> "SynapseServer":
        """Stop and start again on the same port and database.

        module_config=None keeps the current module config; pass a new value to change it.
        """
        self.stop()
        if module_config is not None:
            self.module_config = module_config
        return self.start(timeout=timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """Whole homeserver.log, across restarts."""
        return _read(self.log_path)

    def output_text(self) -> str:
        """Process stdout/stderr, across restarts."""
        return _read(self.output_path)


def start_servers(servers, timeout: float = 90) -> list:
    """Start several servers concurrently (spawn all, then wait for each).

    On failure every server of the batch that is still running is killed before
    the error propagates.
    """
    servers = list(servers)
    try:
        for server in servers:
            server._spawn()
        for server in servers:
            server.wait_until_up(timeout)
    except BaseException:
        for server in servers:
            server.kill()
        raise
    return servers
