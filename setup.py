"""Builds the C extension synapse_school_policy._core from csrc/.

jansson, libpq and librabbitmq (rabbitmq-c, for the roster feed) are found
with pkg-config (libpq falls back to pg_config).
Set SSP_EXTRA_CFLAGS to add compiler flags, e.g. "-Werror" in CI or the
sanitizer flags of the ASan build.

The binding uses only CPython's stable ABI (Py_LIMITED_API 3.10, the oldest
Python that Synapse's supported releases run on), so one abi3 wheel serves
every Python from 3.10 on (docs/benchmarks.md: its speed against the
version-specific build).
"""
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup

DEBIAN_PACKAGES = {
    "jansson": "libjansson-dev",
    "libpq": "libpq-dev",
    "librabbitmq": "librabbitmq-dev",
}


def fail(library, detail):
    sys.exit(
        f"synapse-school-policy: cannot find {library} ({detail}).\n"
        f"On Debian or Ubuntu install it with:  apt-get install {DEBIAN_PACKAGES[library]} pkg-config"
    )


def pkg_config(library):
    if shutil.which("pkg-config") is None:
        return None
    try:
        cflags = subprocess.check_output(["pkg-config", "--cflags", library], text=True, stderr=subprocess.DEVNULL)
        libs = subprocess.check_output(["pkg-config", "--libs", library], text=True, stderr=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        return None
    return shlex.split(cflags), shlex.split(libs)


def find_jansson():
    found = pkg_config("jansson")
    if found is None:
        fail("jansson", "pkg-config knows no jansson")
    return found


def find_libpq():
    found = pkg_config("libpq")
    if found is not None:
        return found
    pg_config = os.environ.get("PG_CONFIG") or shutil.which("pg_config")
    if pg_config is None:
        fail("libpq", "neither pkg-config nor pg_config knows it; set PG_CONFIG to override")
    include = subprocess.check_output([pg_config, "--includedir"], text=True).strip()
    libdir = subprocess.check_output([pg_config, "--libdir"], text=True).strip()
    if not os.path.exists(os.path.join(include, "libpq-fe.h")):
        fail("libpq", f"no libpq-fe.h in {include}")
    return [f"-I{include}"], [f"-L{libdir}", "-lpq"]


def find_librabbitmq():
    # rabbitmq-c, the AMQP client of the roster feed (csrc/roster_feed.c).
    found = pkg_config("librabbitmq")
    if found is None:
        fail("librabbitmq", "pkg-config knows no librabbitmq (rabbitmq-c, for roster_feed)")
    return found


def split_flags(flags):
    include_dirs = [f[2:] for f in flags if f.startswith("-I")]
    other = [f for f in flags if not f.startswith("-I")]
    return include_dirs, other


jansson_cflags, jansson_libs = find_jansson()
libpq_cflags, libpq_libs = find_libpq()
rabbitmq_cflags, rabbitmq_libs = find_librabbitmq()
include_dirs, extra_cflags = split_flags(jansson_cflags + libpq_cflags + rabbitmq_cflags)
library_dirs = [f[2:] for f in jansson_libs + libpq_libs + rabbitmq_libs if f.startswith("-L")]
libraries = [f[2:] for f in jansson_libs + libpq_libs + rabbitmq_libs if f.startswith("-l")]



def files_under(top, suffix):
    """Every file below top (sub-folders included) whose name ends in suffix."""
    return sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(top)
        for name in names
        if name.endswith(suffix)
    )


# The engine (csrc/ and its sub-folders) and the binding (csrc/py/).
sources = files_under("csrc", ".c")
warning_flags = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wshadow", "-Wno-missing-field-initializers"]
extra_env_flags = shlex.split(os.environ.get("SSP_EXTRA_CFLAGS", ""))
# The stable ABI: 0x030A0000 is Python 3.10; the wheel is tagged cp310-abi3.
LIMITED_API = ("Py_LIMITED_API", "0x030A0000")

setup(
    ext_modules=[
        Extension(
            "synapse_school_policy._core",
            sources=sources,
            include_dirs=["csrc"] + include_dirs,
            library_dirs=library_dirs,
            libraries=libraries + ["pthread"],
            extra_compile_args=warning_flags + extra_cflags + extra_env_flags,
            extra_link_args=shlex.split(os.environ.get("SSP_EXTRA_LDFLAGS", "")),
            depends=files_under("csrc", ".h"),
            define_macros=[LIMITED_API],
            py_limited_api=True,
        )
    ],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
