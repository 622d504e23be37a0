"""SynapseFactory: Synapse servers on fresh databases of one PostgreSQL
cluster, every one of them stopped when the factory closes."""
import itertools
import uuid

from .synapse import SynapseServer, start_servers

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
