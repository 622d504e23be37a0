"""A throwaway PostgreSQL cluster on 127.0.0.1, independent of any system service."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from .ports import free_port

SUPERUSER = "postgres"


def find_pg_bindir() -> str:
    """Locate initdb/pg_ctl: pg_config knows the default version, else take the newest install."""
    try:
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    # Debian's pg_config may come from libpq-dev without the server; fall back.
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0,
    )
    if not candidates:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb) found")
    return os.path.dirname(candidates[-1])


class PostgresCluster:
    def __init__(self, bindir: str | None = None):
        self.bindir = bindir or find_pg_bindir()
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.user = SUPERUSER
        self.basedir: str | None = None
        self._running = False

    # -- paths ---------------------------------------------------------------
    @property
    def datadir(self) -> str:
        return os.path.join(self.basedir, "data")

    @property
    def sockdir(self) -> str:
        return os.path.join(self.basedir, "sock")

    @property
    def logfile(self) -> str:
        return os.path.join(self.basedir, "postgres.log")

    # -- process control -----------------------------------------------------
    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        # The server refuses to run as root, so drop to the postgres account.
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        # cwd inside basedir: root's cwd is often not traversable by postgres.
        res = subprocess.run(cmd, cwd=self.basedir, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
                f"\n--- postgres.log ---\n{self.log_text()[-4000:]}"
            )
        return res

    def start(self) -> "PostgresCluster":
        # Under /tmp (not e.g. /root/...) so the postgres user can traverse the path.
        self.basedir = tempfile.mkdtemp(prefix="pgtest-", dir="/tmp")
        os.mkdir(self.sockdir)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(SUPERUSER)
            for p in (self.basedir, self.sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.port = free_port()
        try:
            self._run(
                "initdb", "-D", self.datadir, "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync",
            )
            with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
                # Durability is pointless for a throwaway cluster; speed matters.
                f.write(
                    f"\nlisten_addresses = '{self.host}'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.sockdir}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "logging_collector = off\n"
                    # Each Synapse keeps a pool of ~10 connections; leave headroom.
                    "max_connections = 300\n"
                )
            self._pg_ctl_start()
        except BaseException:
            self.stop()
            raise
        return self

    def _pg_ctl_start(self) -> None:
        self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start")
        self._running = True

    def _pg_ctl_stop(self) -> None:
        self._run("pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "-t", "60", "stop")
        self._running = False

    def pause(self) -> None:
        """Simulate a database outage: stop the server but keep its data."""
        if self._running:
            self._pg_ctl_stop()

    def resume(self) -> None:
        """End the outage: start again on the same port with the same data."""
        if not self._running:
            self._pg_ctl_start()

    def stop(self) -> None:
        """Shut down (if running) and delete everything. Safe to call repeatedly."""
        if self.basedir is None:
            return
        try:
            if self._running or os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
                self._pg_ctl_stop()
        finally:
            shutil.rmtree(self.basedir, ignore_errors=True)
            self.basedir = None
            self._running = False

    # -- databases -----------------------------------------------------------
    def connect(self, dbname: str = "postgres"):
        import psycopg2  # local import: only the test venv needs it

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=dbname)
        conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        return conn

    def create_database(self, name: str) -> dict:
        """Create a database Synapse accepts and return psycopg2 connect args for it."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                # Synapse refuses to start on a non-C collation unless told to allow it.
                cur.execute(
                    f'CREATE DATABASE "{name}" ENCODING \'UTF8\' '
                    "LC_COLLATE='C' LC_CTYPE='C' TEMPLATE template0"
                )
        finally:
            conn.close()
        return {"host": self.host, "port": self.port, "user": self.user, "dbname": name}

    def dsn(self, name: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{name}"

    def log_text(self) -> str:
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""
