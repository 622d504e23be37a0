"""Fresh virtualenvs for the distribution tests (the bundled wheel, the
source install against the system's libraries).

Each holds only the module, installed from a wheel or an sdist; Synapse,
its dependencies and the build requirements (setuptools, wheel) come from
the test's own virtualenv through a .pth file, so nothing is downloaded.
The virtualenv's own site-packages comes first on sys.path, so its copy of
the module wins over the one installed in the test's virtualenv."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def fresh_venv(path: str, package: str, *pip_args: str) -> str:
    """A new virtualenv at `path` with `package` (a wheel or an sdist file)
    installed by the test's pip with `pip_args` added; returns its python.
    An sdist is built there with the test virtualenv's setuptools
    (--no-build-isolation, which `pip_args` must then give), which is why
    the .pth file comes first; --ignore-installed, because pip would
    otherwise take the module the .pth file shows for installed already."""
    run([sys.executable, "-m", "venv", "--without-pip", path])
    python = os.path.join(path, "bin", "python")
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    with open(os.path.join(purelib, "zz_synapse_packages.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
         "--no-cache-dir", "--ignore-installed", "--disable-pip-version-check", *pip_args, package])
    return python


def shared_libraries(path: str) -> dict[str, str]:
    """ldd of `path`: {soname: resolved file, symlinks followed}."""
    found = {}
    for line in run(["ldd", path]).stdout.splitlines():
        match = re.match(r"\s*(\S+) => (/\S+)", line)
        if match:
            found[match.group(1)] = os.path.realpath(match.group(2))
    return found
