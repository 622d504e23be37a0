"""The production install: the module built from the sdist against the
system's jansson, libpq (with its OpenSSL, Kerberos and LDAP) and
rabbitmq-c, so that a security update of those packages reaches it at the
next restart of Synapse, which the repaired wheel's bundled copies never do
(docs/install.md, "Security updates").

As `pip install --no-binary synapse-school-policy` does from an index, the
sdist is built and installed into a fresh virtualenv (the test
virtualenv's interpreter, Synapse and setuptools: nothing is downloaded).
Then: nothing is bundled, the extension names the system's sonames with no
RUNPATH, ldd resolves each to the file the system's loader cache names (a
file of a Debian package), a Python process maps those very files, and a
real Synapse (SQLite, embedded store) loads the module from that
virtualenv and maps the system's libpq and OpenSSL."""
import glob
import json
import os
import re
import sys

import pytest

from harness.client import register_user, request
from harness.synapse import SynapseServer
from harness.venvs import fresh_venv, run, shared_libraries
from support import ADMIN_API, PASSWORD

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The extension's own dependencies, and OpenSSL, which libpq brings.
SYSTEM_SONAMES = ("libjansson.so.4", "libpq.so.5", "librabbitmq.so.4", "libssl.so.3", "libcrypto.so.3")
MAPPED = re.compile(r"lib(jansson|pq|rabbitmq|ssl|crypto)\.so")


def loader_cache() -> dict[str, str]:
    """ldconfig -p: the files the system's loader picks, {soname: file} for x86-64."""
    ldconfig = "/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else "ldconfig"
    found = {}
    for line in run([ldconfig, "-p"]).stdout.splitlines():
        match = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if match and "x86-64" in match.group(2):
            found.setdefault(match.group(1), os.path.realpath(match.group(3)))
    return found


@pytest.fixture(scope="module")
def source_install(tmp_path_factory):
    """(python of the fresh virtualenv, path of its _core extension)."""
    out = tmp_path_factory.mktemp("sdist")
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out), ROOT])
    (sdist,) = glob.glob(str(out / "*.tar.gz"))
    python = fresh_venv(str(out / "venv"), sdist, "--no-build-isolation",
                        "--no-binary", "synapse-school-policy")
    core = run([python, "-c", "import synapse_school_policy._core as c; print(c.__file__)"],
               cwd=out).stdout.strip()
    assert core.startswith(str(out / "venv")) and core.endswith(".abi3.so"), core
    return python, core


def test_the_source_install_bundles_nothing_and_needs_the_system_sonames(source_install):
    _, core = source_install
    package_dir = os.path.dirname(core)
    assert not os.path.exists(os.path.join(os.path.dirname(package_dir), "synapse_school_policy.libs"))
    dynamic = run(["readelf", "-d", core]).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic))
    assert {"libjansson.so.4", "libpq.so.5", "librabbitmq.so.4"} <= needed, needed
    # auditwheel's RUNPATH ($ORIGIN/../synapse_school_policy.libs) is what
    # points a repaired extension at its copies. (The interpreter's own
    # build flags may add its lib directory, as pyenv's do: no copy is there.)
    runpaths = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[([^\]]*)\]", dynamic)
    assert not any("$ORIGIN" in p or ".libs" in p for p in runpaths), runpaths


def test_ldd_resolves_each_library_to_the_systems_own_file(source_install):
    _, core = source_install
    linked = shared_libraries(core)
    cache = loader_cache()
    for soname in SYSTEM_SONAMES:
        assert soname in linked, f"ldd names no {soname}: {linked}"
        assert linked[soname] == cache[soname], (soname, linked[soname], cache[soname])
        # A file of a Debian package (libpq5, libssl3, ...): apt's security
        # updates replace it.
        owner = run(["dpkg", "-S", cache[soname]]).stdout.split(":")[0]
        assert owner.startswith(soname.split(".so")[0].replace("libcrypto", "libssl")), (soname, owner)
    venv = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(core))))
    assert not any(path.startswith(venv) for path in linked.values()), linked


def test_a_python_process_maps_the_systems_libraries(source_install, tmp_path):
    python, _ = source_install
    probe = (
        "import json\n"
        "from synapse_school_policy import _core\n"
        "print(json.dumps(sorted({l.split()[-1] for l in open('/proc/self/maps') if '/' in l})))\n"
    )
    mapped = {os.path.realpath(p) for p in json.loads(run([python, "-c", probe], cwd=tmp_path).stdout)}
    cache = loader_cache()
    for soname in SYSTEM_SONAMES:
        assert cache[soname] in mapped, (soname, sorted(p for p in mapped if MAPPED.search(p)))
    assert not any("synapse_school_policy.libs" in p for p in mapped)


def test_a_real_synapse_loads_the_module_linked_to_the_systems_libpq_and_openssl(source_install, tmp_path):
    python, _ = source_install
    server = SynapseServer(
        tmp_path / "synapse", python=python, database=None,
        module_config={"service_users": ["@sync:school.test"], "data_dir": str(tmp_path / "store"),
                       "schools": {"gym-nord": {"messenger": True}}},
    )
    try:
        server.start(timeout=120)
        with open(f"/proc/{server.proc.pid}/maps") as f:
            mapped = {os.path.realpath(line.split()[-1]) for line in f if MAPPED.search(line)}
        cache = loader_cache()
        assert {cache[s] for s in SYSTEM_SONAMES} <= mapped, mapped
        with open(server.log_path) as f:
            assert "synapse_school_policy loaded on main" in f.read()
        sync = register_user(server, "sync", PASSWORD)
        status, body = request(server.base_url, "PUT", f"{ADMIN_API}/users/@anna:school.test",
                               {"schools": [{"school": "gym-nord", "role": "student"}]}, token=sync.token)
        assert status == 200, body
    finally:
        server.stop()
