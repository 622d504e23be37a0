"""synapse-school-policy: a Synapse module that enforces school rules.

Load it from homeserver.yaml:

    modules:
      - module: synapse_school_policy.SchoolPolicy
        config: {...}

The rules themselves live in the C engine (``synapse_school_policy._core``);
this package adapts it to Synapse's module API.
"""
from synapse_school_policy.module import SchoolPolicy

__all__ = ["SchoolPolicy"]
