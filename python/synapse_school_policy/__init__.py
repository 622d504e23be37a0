"""synapse-school-policy: a Synapse module that enforces school rules.

Load it from homeserver.yaml:

    modules:
      - module: synapse_school_policy.SchoolPolicy
        config: {...}

The rules themselves live in the C engine (``synapse_school_policy._core``);
this package adapts it to Synapse's module API.
"""
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_school_policy.module import SchoolPolicy

__all__ = ["SchoolPolicy"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that the command line (which never needs
    # Synapse) does not pay seconds for importing Synapse.
    if name == "SchoolPolicy":
        from synapse_school_policy.module import SchoolPolicy

        return SchoolPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
