"""The rules on a real Synapse: one file per rule family (a package, so that
the worlds of conftest.py live for this folder only)."""
