"""Fixtures for every folder of tests/, and the import path they share.

- tests/unit: starts no process (unit/conftest.py refuses the fixtures
  below); `make check`.
- tests/rules: a rule family per file, on a real Synapse; rules/conftest.py
  holds the worlds the files share.
- tests/system: workers, PostgreSQL, the roster feed, real clients, the
  wheel, the audit page, the admin API and the command line.

support.py (the school world and the assertions), harness/ (the processes)
and reference_policy/ stay at the top of tests/, importable from every
folder."""
import os
import sys

import pytest

# Make harness, support and reference_policy importable from every folder
# (unit, rules and system are packages; tests/ itself is not).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.postgres import PostgresCluster, find_pg_bindir  # noqa: E402
from harness.factory import SynapseFactory  # noqa: E402


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
