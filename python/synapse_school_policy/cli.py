"""The synapse-school-policy command line."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from synapse_school_policy import _core, homeserver_check

MODULE_NAME = "synapse_school_policy.SchoolPolicy"


def _load_homeserver_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except OSError as exc:
        raise SystemExit(f"synapse-school-policy: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SystemExit(f"synapse-school-policy: {path} is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise SystemExit(f"synapse-school-policy: {path} does not hold a YAML mapping")
    return config


def _module_config(homeserver: dict[str, Any]) -> dict[str, Any] | None:
    for entry in homeserver.get("modules") or ():
        if isinstance(entry, dict) and entry.get("module") == MODULE_NAME:
            return entry.get("config") or {}
    return None


def doctor(args: argparse.Namespace) -> int:
    path = args.homeserver_yaml or args.config
    if path is None:
        raise SystemExit("synapse-school-policy doctor: give the path of homeserver.yaml")
    homeserver = _load_homeserver_yaml(path)
    problems = [
        f"{f['setting']}: {f['problem']}"
        for f in homeserver_check.findings(homeserver_check.settings_from_yaml(homeserver))
    ]
    module_config = _module_config(homeserver)
    if module_config is None:
        problems.append(f"modules: {MODULE_NAME} is not configured")
    else:
        try:
            _core.check_config(json.dumps(module_config))
        except _core.InputError as exc:
            problems.append(f"modules.{MODULE_NAME}.config.{exc}")
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        print(f"{path}: {len(problems)} problem(s)")
        return 1
    print(f"{path}: no problems found")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synapse-school-policy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    doc = sub.add_parser("doctor", help="check homeserver.yaml for settings that break the school rules")
    doc.add_argument("homeserver_yaml", nargs="?", help="path of homeserver.yaml")
    doc.add_argument("--config", help="path of homeserver.yaml (same as the positional argument)")
    doc.set_defaults(func=doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
