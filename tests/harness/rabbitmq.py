"""A throwaway RabbitMQ broker on 127.0.0.1 for the roster feed tests.

Debian's rabbitmq-server, started in the foreground with its own node name,
AMQP port, distribution port, epmd port, HOME (Erlang cookie), config and
data directory in a temp dir: it never touches the machine's broker
(5672/4369) nor its data. stop() and start() again keep the data, so a test
can restart the broker mid-stream; close() removes everything.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

from .ports import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class RabbitMQServer:
    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="rabbitmqtest-")
        self.node = f"ssptest{self.port}@localhost"
        self.proc: subprocess.Popen | None = None
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            f.write(
                f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                "loopback_users.guest = true\n"
                "log.console = false\n"
                "log.file.level = info\n"
                # The test box is small and shared: no disk alarm at 50 MB free.
                "disk_free_limit.absolute = 10MB\n"
            )
        open(os.path.join(self.dir, "enabled_plugins"), "w").write("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/%2f"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=self.dir,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_CONFIG_FILE=os.path.join(self.dir, "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=os.path.join(self.dir, "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=os.path.join(self.dir, "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.dir, "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=os.path.join(self.dir, "mnesia"),
            RABBITMQ_LOG_BASE=os.path.join(self.dir, "log"),
            RABBITMQ_PID_FILE=os.path.join(self.dir, "rabbitmq.pid"),
            RABBITMQ_LOGS=os.path.join(self.dir, "log", "rabbit.log"),
            # exec erl in the foreground with -noinput: SIGTERM stops the node.
            RUNNING_UNDER_SYSTEMD="1",
        )
        return env

    def start(self, timeout: float = 120) -> "RabbitMQServer":
        import pika  # the tests' publisher; installed by scripts/setup.sh

        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)
        self.proc = subprocess.Popen(
            [SERVER], env=self._env(), cwd=self.dir, stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.dir, "server.out"), "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"rabbitmq-server exited with {self.proc.returncode}; see {self.dir}/server.out"
                )
            try:
                pika.BlockingConnection(self.params()).close()
                return self
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.25)
        raise RuntimeError(f"rabbitmq-server did not accept AMQP in {timeout}s; see {self.dir}")

    def params(self):
        import pika

        return pika.ConnectionParameters(
            host=self.host, port=self.port, connection_attempts=1, socket_timeout=5,
            blocked_connection_timeout=30,
        )

    def connect(self):
        import pika

        return pika.BlockingConnection(self.params())

    def stop(self, timeout: float = 60) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        # The node started its own epmd on ERL_EPMD_PORT; it outlives the node.
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        if os.path.exists(epmd):
            subprocess.run(
                [epmd, "-port", str(self.epmd_port), "-kill"], env=self._env(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)
