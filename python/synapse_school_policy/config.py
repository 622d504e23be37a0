"""Validation of the module's ``config:`` mapping.

The C engine owns the schema; this file only turns the YAML mapping into the
JSON the engine reads and its errors into Synapse's ConfigError.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from synapse.module_api.errors import ConfigError

from synapse_school_policy import _core

CONFIG_PATH = ("modules", "synapse_school_policy.SchoolPolicy", "config")


@dataclass(frozen=True)
class PolicyConfig:
    """The validated config, as the JSON text the engine is built from."""

    json_text: str
    service_users: frozenset[str]
    database: str | None = None


def parse_config(config: Mapping[str, Any] | None) -> PolicyConfig:
    """Validates the module config; raises ConfigError naming the bad key."""
    try:
        json_text = json.dumps(config if config is not None else {})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config: cannot be represented as JSON: {exc}", CONFIG_PATH) from exc
    try:
        _core.check_config(json_text)
    except _core.InputError as exc:
        raise ConfigError(str(exc), CONFIG_PATH) from exc
    # check_config has validated this list, so it is a list of strings.
    service_users = frozenset((config or {}).get("service_users") or ())
    database = (config or {}).get("database")
    return PolicyConfig(json_text=json_text, service_users=service_users, database=database)
