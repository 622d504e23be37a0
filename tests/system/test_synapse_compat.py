"""The start-up refusal of the Synapse compatibility window, on a real
Synapse: one outside the window stops at start-up with the module's
message. The window itself and the private members are checked without
Synapse in tests/unit/test_synapse_compat.py."""
import os
import sys

import pytest

from synapse_school_policy import synapse_compat


@pytest.mark.integration
def test_synapse_outside_the_window_refuses_to_load_the_module(synapse_factory, tmp_path):
    """A real Synapse that reports a version below the window (a
    sitecustomize sets synapse.__version__ before the homeserver starts)
    stops at start-up with the module's message."""
    oldest, newest = synapse_compat.supported_window()
    major, minor, _ = (int(p) for p in oldest.split("."))
    too_old = f"{major}.{minor - 1}.0"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import synapse\nsynapse.__version__ = {too_old!r}\n")
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    server = synapse_factory(
        {"service_users": ["@sync:school.test"], "schools": {"gym-nord": {"messenger": True}},
         "data_dir": str(tmp_path / "store")},
        start=False, env={"PYTHONPATH": pythonpath}, python=sys.executable,
    )
    code, text = server.start_expect_failure()
    assert code != 0
    assert f"supports {synapse_compat.window_text(oldest, newest)}; this is Synapse {too_old}" in text
