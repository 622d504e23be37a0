"""Run a real Synapse homeserver as a subprocess for integration tests."""

import json
import os
import secrets
import signal
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


class SynapseError(RuntimeError):
    pass


class SynapseServer:
    def __init__(
        self,
        workdir,
        server_name: str = "school.test",
        module_config=None,
        database: dict | None = None,
        python: str = sys.executable,
        extra_config: dict | None = None,
        env: dict | None = None,
    ):
        self.workdir = os.path.abspath(str(workdir))
        self.server_name = server_name
        self.module_config = module_config
        self.database = database
        self.python = python
        self.extra_config = extra_config or {}
        self.env = env or {}
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
        if self.module_config is not None:
            cfg["modules"] = [{"module": MODULE_PATH, "config": self.module_config}]
        cfg.update(self.extra_config)
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=2)

        if not os.path.exists(self._path("signing.key")):
            subprocess.run(
                [self.python, "-m", "synapse._scripts.generate_signing_key",
                 "-o", self._path("signing.key")],
                check=True, capture_output=True,
            )

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
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 90) -> "SynapseServer":
        self._spawn()
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
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Hard crash, e.g. to test recovery without a clean shutdown."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill()
        self.proc.wait()

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
