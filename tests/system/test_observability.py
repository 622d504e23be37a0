"""The Grafana dashboard and the Prometheus alerts in contrib/ stay true to
the metrics the module exports.

- promtool (Debian's prometheus package) checks the alerting rules and runs
  their unit tests (tests/prometheus/alerts_test.yml);
- every dashboard query is valid PromQL (promtool parses it as a rule);
- every metric and label that the dashboard, the alerts and their tests name
  is one that python/synapse_school_policy/metrics.py defines, and every
  metric defined there is on the dashboard, so neither side can drift;
- a real Synapse with the module serves those metrics on its metrics
  listener."""
import json
import re
import shutil
import subprocess
import urllib.request

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from harness.ports import free_port
from support import REPO_ROOT, School, assert_token_refused, base_config
from synapse_school_policy import metrics

ALERTS = REPO_ROOT / "contrib" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO_ROOT / "tests" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO_ROOT / "contrib" / "grafana" / "dashboard.json"

METRIC = re.compile(r"\b(synapse_school_policy_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b(synapse_school_policy_[a-z0-9_]+)\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Grafana's variables, replaced by what Grafana would put there.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$job": ".*", "$instance": ".*"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise RuntimeError("promtool is missing: scripts/setup.sh installs Debian's prometheus package")
    return path


def run_promtool(*args, cwd=REPO_ROOT):
    result = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every collector metrics.py defines."""
    names: dict[str, set[str]] = {}
    for collector in vars(metrics).values():
        if not isinstance(collector, MetricWrapperBase):
            continue
        labels = set(collector._labelnames)  # noqa: SLF001 - prometheus_client keeps them here
        for family in collector.describe():
            suffixes = ["_total", "_created"] if family.type == "counter" else [""]
            for suffix in suffixes:
                names[family.name + suffix] = labels
    return names


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []

    def walk(panels):
        for panel in panels:
            queries.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return queries


def dashboard_variable_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def alert_test_series() -> list[str]:
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    return [s["series"] for case in tests["tests"] for s in case["input_series"]]


def grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def test_alert_rules_pass_promtool_check():
    out = run_promtool("check", "rules", str(ALERTS))
    assert "SUCCESS" in out


def test_alert_rules_unit_tests():
    out = run_promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert "SUCCESS" in out


def test_dashboard_queries_are_valid_promql(tmp_path):
    queries = dashboard_queries()
    assert len(queries) >= 10
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": grafana_to_promql(q)} for i, q in enumerate(queries)
    ]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    run_promtool("check", "rules", str(path))


@pytest.mark.parametrize("source", ["dashboard", "alerts", "alert tests"])
def test_every_metric_and_label_referenced_exists(source):
    exprs = {
        "dashboard": lambda: dashboard_queries() + dashboard_variable_queries(),
        "alerts": alert_exprs,
        "alert tests": alert_test_series,
    }[source]()
    known = exported()
    referenced = set()
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names, f"{source}: a query on none of the module's metrics: {expr}"
        unknown = names - known.keys()
        assert not unknown, f"{source} names metrics that metrics.py does not define: {sorted(unknown)}"
        referenced |= names
        for name, matchers in SELECTOR.findall(expr):
            for label in MATCHER_LABEL.findall(matchers):
                assert label in known[name] | TARGET_LABELS, f"{source}: {name} has no label {label!r}: {expr}"
        allowed = set().union(*(known[n] for n in names)) | TARGET_LABELS
        for group in GROUPING.findall(expr):
            for label in filter(None, (x.strip() for x in group.split(","))):
                assert label in allowed, f"{source}: no metric in {expr!r} has a label {label!r}"
    assert referenced


def test_every_metric_is_on_the_dashboard():
    on_dashboard = set(METRIC.findall(" ".join(dashboard_queries())))
    families = {name for name in exported() if not name.endswith("_created")}
    missing = families - on_dashboard
    assert not missing, f"metrics.py defines metrics the dashboard does not show: {sorted(missing)}"


@pytest.mark.integration
def test_synapse_serves_every_metric_the_dashboard_and_alerts_use(synapse_factory, tmp_path):
    port = free_port()
    server = synapse_factory(
        base_config(tmp_path / "store"),
        extra_config={"enable_metrics": True},
        extra_listeners=[{"port": port, "bind_addresses": ["127.0.0.1"], "type": "metrics"}],
    )
    world = School(server)
    world.register("sync")
    stranger = world.register("stranger")  # on no roster: even the token is refused
    assert_token_refused(stranger.create_room(preset="private_chat"))

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_synapse/metrics", timeout=30) as response:
        text = response.read().decode()
    served = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    used = set()
    for expr in dashboard_queries() + alert_exprs():
        used |= set(METRIC.findall(expr))
    missing = used - served
    assert not missing, f"Synapse does not serve {sorted(missing)}"
    denied = [line for line in text.splitlines()
              if line.startswith("synapse_school_policy_decisions_total{")
              and 'rule="not_on_roster"' in line and 'outcome="denied"' in line]
    assert denied and float(denied[0].rsplit(" ", 1)[1]) >= 1, denied
    connected = [line for line in text.splitlines() if line.startswith("synapse_school_policy_store_connected")]
    assert connected and float(connected[0].rsplit(" ", 1)[1]) == 1.0, connected
