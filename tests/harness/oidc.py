"""The school cloud's OpenID Connect provider: oidc-provider (npm) under Node,
run from tests/oidc/provider.mjs on a free loopback port with a few test
accounts, for Synapse's `oidc_providers` to sign people in through."""

import hashlib
import json
import os
import pathlib
import select
import subprocess
import time

from .ports import free_port
from .synapse import stop_process

OIDC_DIR = pathlib.Path(__file__).resolve().parent.parent / "oidc"


def oidc_modules() -> pathlib.Path:
    """The node_modules that scripts/setup.sh installed for tests/oidc, in the
    cache and keyed by the lock file (or SSP_OIDC_MODULES)."""
    if os.environ.get("SSP_OIDC_MODULES"):
        path = pathlib.Path(os.environ["SSP_OIDC_MODULES"])
    else:
        key = hashlib.sha256((OIDC_DIR / "package-lock.json").read_bytes()).hexdigest()[:16]
        cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
        path = cache / "synapse-school-policy" / f"oidc-{key}" / "node_modules"
    if not (path / "oidc-provider" / "package.json").is_file():
        raise RuntimeError(f"oidc-provider is not installed in {path}: run scripts/setup.sh")
    return path


class OidcProvider:
    """One provider process.

    `clients`: [{"client_id", "client_secret", "redirect_uris": [...]}];
    `accounts`: [{"username", "password", "sub", "name"}]. The login page
    (`#username`, `#password`, `#sign-in`) checks them; the account's user
    name is its `preferred_username` claim and `sub` its subject."""

    def __init__(self, workdir, clients: list, accounts: list):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.clients = clients
        self.accounts = accounts
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> pathlib.Path:
        return self.workdir / "provider.log"

    def start(self, timeout: float = 30) -> "OidcProvider":
        config = self.workdir / "provider.json"
        config.write_text(json.dumps({
            "port": self.port, "issuer": self.issuer,
            "clients": self.clients, "accounts": self.accounts,
        }))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["node", str(OIDC_DIR / "provider.mjs"), str(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env={**os.environ, "SSP_OIDC_MODULES": str(oidc_modules())},
            )
        deadline = time.monotonic() + timeout
        # The first line says it listens (or why not); nothing else comes on stdout.
        while not select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(f"the OIDC provider did not start within {timeout}s: {self._log_tail()}")
        line = self.proc.stdout.readline()
        answer = json.loads(line) if line.strip() else {"error": f"exited {self.proc.wait(5)}"}
        if not answer.get("ready"):
            self.kill()
            raise RuntimeError(f"the OIDC provider failed: {answer} {self._log_tail()}")
        return self

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.stdin.close()  # its end of input stops it
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
