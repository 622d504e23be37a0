import itertools
import os
import sys
import uuid

import pytest

# Make `harness` importable whether or not tests/ is a package (pytest's rootdir
# insertion differs between the two layouts).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.postgres import PostgresCluster, find_pg_bindir  # noqa: E402
from harness.synapse import SynapseServer, start_servers  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "integration: starts real PostgreSQL/Synapse processes (slow)"
    )


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL cluster for the whole session."""
    try:
        bindir = find_pg_bindir()
    except FileNotFoundError as e:
        raise RuntimeError(f"PostgreSQL binaries are required for the integration tests: {e}") from e
    cluster = PostgresCluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


_db_counter = itertools.count()


class SynapseFactory:
    """Callable that builds (and by default starts) a SynapseServer on a fresh database.

    Every server created is stopped in close(), even if the test failed or the
    server never came up.
    """

    def __init__(self, postgres, tmp_path_factory):
        self._postgres = postgres
        self._tmp = tmp_path_factory
        self.servers: list[SynapseServer] = []

    def __call__(self, module_config=None, *, start=True, **kwargs) -> SynapseServer:
        n = next(_db_counter)
        if "database" not in kwargs:
            kwargs["database"] = self._postgres.create_database(
                f"synapse_{n}_{uuid.uuid4().hex[:8]}"
            )
        server = SynapseServer(
            self._tmp.mktemp(f"synapse{n}"), module_config=module_config, **kwargs
        )
        self.servers.append(server)  # register before start so a failed start is cleaned up
        if start:
            server.start()
        return server

    def federation_pair(
        self, module_config=None, *, start=True, **kwargs
    ) -> tuple[SynapseServer, SynapseServer]:
        """Two federation-capable servers (SynapseServer(federation=True)), each on
        its own database, started concurrently. The first gets `module_config`, the
        second runs vanilla Synapse; extra kwargs (e.g. extra_config) go to both."""
        servers = tuple(
            self(config, start=False, federation=True, **kwargs)
            for config in (module_config, None)
        )
        if start:
            start_servers(servers)
        return servers

    def close(self):
        # Stop every server even if one of them misbehaves; report the first error.
        errors = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as e:
                errors.append(e)
                server.kill()
        if errors:
            raise errors[0]


@pytest.fixture
def synapse_factory(postgres, tmp_path_factory):
    factory = SynapseFactory(postgres, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def module_synapse_factory(postgres, tmp_path_factory):
    """Same as synapse_factory, for module-scoped fixtures sharing one server."""
    factory = SynapseFactory(postgres, tmp_path_factory)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def federation_pair(synapse_factory):
    """(server_a, server_b): two vanilla Synapse servers, started, that federate with
    each other over loopback. Stopped at teardown via synapse_factory."""
    return synapse_factory.federation_pair()
