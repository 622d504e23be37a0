"""Synapse with workers: a main process plus generic workers, replicating
through a private redis-server and main's HTTP replication listener."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

from .ports import free_port
from .synapse import SynapseError, SynapseServer, _tail, kill_process, stop_process


def worker_main_config(redis_port: int, replication_port: int) -> tuple[dict, list]:
    """(extra_config, extra_listeners) that turn a SynapseServer into the
    main process of a worker deployment."""
    extra = {
        "instance_map": {"main": {"host": "127.0.0.1", "port": replication_port}},
        "redis": {"enabled": True, "host": "127.0.0.1", "port": redis_port},
    }
    listeners = [
        {
            "port": replication_port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "resources": [{"names": ["replication"]}],
        }
    ]
    return extra, listeners


class GenericWorker:
    """`python -m synapse.app.generic_worker -c homeserver.yaml -c <worker>.yaml`."""

    def __init__(self, main: SynapseServer, name: str):
        self.main = main
        self.name = name
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _path(self, suffix: str) -> str:
        return os.path.join(self.main.workdir, f"{self.name}{suffix}")

    @property
    def log_path(self) -> str:
        return self._path(".log")

    def _write_config(self) -> None:
        log_config = {
            "version": 1,
            "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(lineno)d - "
                                                 "%(levelname)s - %(request)s - %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise",
                                  "filename": self.log_path, "encoding": "utf8"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        with open(self._path("-log.yaml"), "w") as f:
            json.dump(log_config, f)
        cfg = {
            "worker_app": "synapse.app.generic_worker",
            "worker_name": self.name,
            "worker_listeners": [
                {"type": "http", "port": self.port, "bind_addresses": ["127.0.0.1"],
                 "resources": [{"names": ["client"]}]}
            ],
            "worker_log_config": self._path("-log.yaml"),
        }
        with open(self._path(".yaml"), "w") as f:
            json.dump(cfg, f)

    def start(self, timeout: float = 90) -> "GenericWorker":
        self._write_config()
        with open(self._path(".out"), "ab") as out:
            self.proc = subprocess.Popen(
                [self.main.python, "-m", "synapse.app.generic_worker",
                 "-c", self.main.config_path, "-c", self._path(".yaml")],
                cwd=self.main.workdir, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, env={**os.environ, **self.main.env},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SynapseError(
                    f"worker {self.name} exited with {self.proc.returncode}\n"
                    + _tail(self.log_path) + _tail(self._path(".out"))
                )
            try:
                with urllib.request.urlopen(self.base_url + "/_matrix/client/versions", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.kill()
        raise SynapseError(f"worker {self.name} not ready\n" + _tail(self.log_path))

    def start_expect_failure(self, timeout: float = 60) -> tuple[int, str]:
        self._write_config()
        res = subprocess.run(
            [self.main.python, "-m", "synapse.app.generic_worker",
             "-c", self.main.config_path, "-c", self._path(".yaml")],
            cwd=self.main.workdir, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **self.main.env},
        )
        log = ""
        if os.path.exists(self.log_path):
            with open(self.log_path, errors="replace") as f:
                log = f.read()
        return res.returncode, res.stdout + res.stderr + log

    def stop(self, timeout: float = 15) -> None:
        stop_process(self.proc, timeout)

    def kill(self) -> None:
        kill_process(self.proc)

    def log_text(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
