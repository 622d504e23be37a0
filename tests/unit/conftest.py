"""tests/unit starts no process: no PostgreSQL, no Synapse, no broker.
`make check` runs this folder in the inner loop, so a test here that asks
for a fixture that starts one fails at once, naming the folder it belongs
in (tests/rules for a rule on a real Synapse, tests/system otherwise)."""
import pytest


def _refuse(request):
    pytest.fail(
        f"{request.node.nodeid} asks for `{request.fixturename}`, which starts a process: "
        "tests/unit starts none; move the test to tests/rules or tests/system",
        pytrace=False,
    )


@pytest.fixture
def postgres(request):
    _refuse(request)


@pytest.fixture
def synapse_factory(request):
    _refuse(request)


@pytest.fixture
def module_synapse_factory(request):
    _refuse(request)


@pytest.fixture
def federation_pair(request):
    _refuse(request)
