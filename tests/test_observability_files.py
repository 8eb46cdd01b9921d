"""The shipped Prometheus alert rules, scrape config and Grafana dashboard use only metrics
(and labels) the daemon really exports, and are well-formed enough to load as they are."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "etc" / "prometheus" / "apicenterd-alerts.yml"
SCRAPE = ROOT / "etc" / "prometheus" / "scrape.yml"
DASHBOARD = ROOT / "etc" / "grafana" / "apicenterd-dashboard.json"

JOB = "apicenterd"
SEVERITIES = {"critical", "warning"}  # critical pages, warning opens a ticket

# Every module that defines metrics on the default registry.
METRIC_MODULES = ["apicenterd.observe.metrics", "apicenterd.http", "apicenterd.circuit", "apicenterd.ratelimit"]

# Series every scrape has besides the daemon's own: Prometheus' `up`, and the process and
# platform collectors of prometheus_client (listed so the check does not depend on /proc).
STANDARD = {
    "up": {"job", "instance"},
    "process_cpu_seconds_total": set(),
    "process_resident_memory_bytes": set(),
    "process_virtual_memory_bytes": set(),
    "process_start_time_seconds": set(),
    "process_open_fds": set(),
    "process_max_fds": set(),
    "python_info": {"implementation", "major", "minor", "patchlevel", "version"},
    "python_gc_objects_collected_total": {"generation"},
    "python_gc_objects_uncollectable_total": {"generation"},
    "python_gc_collections_total": {"generation"},
}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series

PROMQL_FUNCTIONS = {
    # aggregations
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
    # functions
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_count", "histogram_sum", "histogram_fraction", "histogram_quantile",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "ln",
    "log2", "log10", "minute", "month", "predict_linear", "rate", "resets", "round", "scalar",
    "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp", "vector", "year",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time",
}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "atan2", "inf", "nan", "offset"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__all"}


# ---------------------------------------------------------------- what the daemon exports


def _exported() -> dict[str, set[str]]:
    """Series name -> its label names, for every metric the daemon registers."""
    for name in METRIC_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    collectors = {}
    for collector in list(getattr(REGISTRY, "_collector_to_names", {})):
        for metric in collector.describe() if hasattr(collector, "describe") else ():
            collectors[metric.name] = collector
    names: dict[str, set[str]] = {k: set(v) for k, v in STANDARD.items()}
    for metric in REGISTRY.collect():
        labels = set(getattr(collectors.get(metric.name), "_labelnames", ()))
        for sample in metric.samples:
            labels |= set(sample.labels) - {"le", "quantile"}
        suffixes = {
            "counter": ["_total", "_created"],
            "histogram": ["_bucket", "_sum", "_count", "_created"],
            "summary": ["", "_sum", "_count", "_created"],
            "gauge": [""],
            "info": ["_info"],
        }.get(metric.type, [""])
        for suffix in suffixes:
            series = metric.name + suffix
            names.setdefault(series, set()).update(labels | ({"le"} if suffix == "_bucket" else set()))
        for sample in metric.samples:  # whatever else it emits (e.g. untyped collectors)
            names.setdefault(sample.name, set()).update(set(sample.labels))
    return names


EXPORTED = _exported()


def test_the_registry_holds_the_daemon_metrics():
    """The check below is only as good as this list: it must know the daemon's metrics."""
    for series in (
        "apicenterd_flow_runs_total",
        "apicenterd_records_total",
        "apicenterd_flow_run_duration_seconds_bucket",
        "apicenterd_flow_last_success_timestamp_seconds",
        "apicenterd_api_requests_total",
        "apicenterd_rate_limit_wait_seconds_total",
    ):
        assert series in EXPORTED, series
    assert EXPORTED["apicenterd_records_total"] >= {"flow", "entity", "action"}
    assert "apicenterd_records" not in EXPORTED  # a counter is queried by its _total series


# ---------------------------------------------------------------- a small PromQL reader


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, function names) an expression uses."""
    s = _strip_strings(expr)
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\b(group_left|group_right|by|without|on|ignoring)\b", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z$_]+", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables outside matchers
    metrics, functions = set(), set()
    for m in re.finditer(r"(?<![\w.$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", s):
        word, call = m.group(1), m.group(2)
        if word.lower() in PROMQL_KEYWORDS:
            continue
        (functions if call else metrics).add(word)
    return metrics, functions


def promql_labels(expr: str) -> tuple[list[tuple[str, str]], set[str]]:
    """([(metric, label in its matcher)], labels named in by/without/on/ignoring/group_* lists)."""
    matched = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}", expr):
        metric = m.group(1) or ""
        for label in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*["\'`]', m.group(2)):
            matched.append((metric, label))
    grouped = set()
    for lst in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", _strip_strings(expr)):
        grouped |= {x.strip() for x in lst.split(",") if x.strip()}
    return matched, grouped


def problems(expr: str) -> list[str]:
    """What in an expression the daemon does not export: unknown metrics, labels, functions."""
    out = []
    metrics, functions = promql_names(expr)
    if not metrics:
        out.append("uses no metric at all")
    for name in sorted(metrics - EXPORTED.keys()):
        out.append(f"unknown metric {name}")
    for name in sorted(functions - PROMQL_FUNCTIONS):
        out.append(f"unknown function {name}()")
    matched, grouped = promql_labels(expr)
    available = set(TARGET_LABELS) | {"__name__"}
    for name in metrics & EXPORTED.keys():
        available |= EXPORTED[name]
    for metric, label in matched:
        own = EXPORTED.get(metric, available) | TARGET_LABELS | {"__name__"}
        if label not in own:
            out.append(f"{metric or 'selector'} has no label {label!r}")
    for label in sorted(grouped - available):
        out.append(f"no metric in the expression has label {label!r}")
    return out


@pytest.mark.parametrize(
    "expr, wrong",
    [
        ('rate(apicenterd_flow_run_total{status="failed"}[5m])', "unknown metric apicenterd_flow_run_total"),
        ("sum by (flow) (apicenterd_records)", "unknown metric apicenterd_records"),
        ('increase(apicenterd_records_total{acton="failed"}[5m])', "has no label 'acton'"),
        ("sum by (flwo) (rate(apicenterd_records_total[5m]))", "label 'flwo'"),
        ("rat(apicenterd_records_total[5m])", "unknown function rat()"),
        ("time() - apicenterd_flow_last_success_timestamp", "unknown metric apicenterd_flow_last_success_timestamp"),
        ("process_resident_memory > 1e9", "unknown metric process_resident_memory"),
    ],
)
def test_the_checker_catches_typos(expr, wrong):
    assert any(wrong in p for p in problems(expr)), problems(expr)


@pytest.mark.parametrize(
    "expr",
    [
        'time() - max by (job, flow) (apicenterd_flow_last_success_timestamp_seconds) > 4 * 3600',
        'histogram_quantile(0.95, sum by (flow, le) (rate(apicenterd_flow_run_duration_seconds_bucket{flow=~"$flow"}[$__rate_interval])))',
        'process_resident_memory_bytes{job="apicenterd"} > 1e9 and on (instance) up == 1',
        'sum by (connection) (increase(apicenterd_api_requests_total{status=~"5..|timeout"}[10m])) offset 1h',
    ],
)
def test_the_checker_accepts_good_expressions(expr):
    assert problems(expr) == []


# ---------------------------------------------------------------- alert rules


def _rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_are_well_formed():
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}
    groups = doc["groups"]
    assert groups and len({g["name"] for g in groups}) == len(groups)
    alerts = []
    for group in groups:
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            name = rule.get("alert")
            assert isinstance(name, str) and re.fullmatch(r"Apicenterd[A-Za-z0-9]+", name), rule
            alerts.append(name)
            assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), name
            assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: for"
            assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: labels.severity"
            annotations = rule.get("annotations", {})
            for key in ("summary", "description"):
                assert isinstance(annotations.get(key), str) and annotations[key].strip(), f"{name}: {key}"
    assert len(set(alerts)) == len(alerts), "alert names repeat"
    assert {"critical", "warning"} <= {r["labels"]["severity"] for r in _rules()}


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_alert_rule_uses_only_exported_metrics(rule):
    assert problems(rule["expr"]) == []


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_alert_annotations_name_labels_the_alert_has(rule):
    """`{{ $labels.flow }}` is empty unless the expression keeps the flow label."""
    expr = rule["expr"]
    _matched, grouped = promql_labels(expr)
    if re.search(r"\b(sum|min|max|avg|count)\s+by\s*\(", expr):
        kept = set(re.findall(r"\bby\s*\(([^)]*)\)", expr)[0].replace(" ", "").split(","))
    elif expr.lstrip().startswith("absent("):
        kept = {m[1] for m in promql_labels(expr)[0]}
    else:
        metrics, _ = promql_names(expr)
        kept = set(TARGET_LABELS).union(*(EXPORTED.get(m, set()) for m in metrics))
    text = rule["annotations"]["summary"] + rule["annotations"]["description"]
    used = set(re.findall(r"\$labels\.(\w+)", text))
    assert used <= kept, f"{rule['alert']} annotations use {used - kept}, the expression keeps only {kept}"


def test_alerts_name_the_flow_or_connection_and_say_what_to_do():
    for rule in _rules():
        ann = rule["annotations"]
        expr = rule["expr"]
        for label in ("flow", "connection"):
            if re.search(rf"by \([^)]*\b{label}\b", expr):
                assert f"$labels.{label}" in ann["summary"], f"{rule['alert']}: summary should name the {label}"
        assert "`" in ann["description"], f"{rule['alert']}: description should give a command to run"
    names = {r["alert"] for r in _rules()}
    for needed in ("ApicenterdDown", "ApicenterdRecordsFailing", "ApicenterdFlowRunsFailing"):
        assert needed in names
    text = ALERTS.read_text()
    for command in ("apicenterd runs", "apicenterd dlq list --flow", "apicenterd auth"):
        assert command in text


def test_alerts_cover_every_daemon_metric_family():
    used = set()
    for rule in _rules():
        used |= promql_names(rule["expr"])[0]
    for series in (
        "apicenterd_flow_runs_total",
        "apicenterd_flow_last_success_timestamp_seconds",
        "apicenterd_records_total",
        "apicenterd_api_requests_total",
        "apicenterd_rate_limit_wait_seconds_total",
        "apicenterd_rate_limit_waiting_seconds",
        "apicenterd_auth_failures_total",
        "apicenterd_connection_paused",
        "up",
        "process_resident_memory_bytes",
    ):
        assert series in used, series
    if "apicenterd_circuit_open" in EXPORTED:
        assert "apicenterd_circuit_open" in used


# ---------------------------------------------------------------- scrape config


def test_scrape_config_targets_the_default_metrics_address():
    from apicenterd.config import DaemonConfig

    doc = yaml.safe_load(SCRAPE.read_text())
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    assert JOB in jobs
    targets = [t for sc in jobs[JOB]["static_configs"] for t in sc["targets"]]
    assert DaemonConfig().metrics_address in targets
    assert jobs[JOB].get("metrics_path", "/metrics") == "/metrics"
    assert ALERTS.name in doc["rule_files"]
    # the daemon's own rules select the same job
    for rule in _rules():
        for job in re.findall(r'job\s*=\s*"([^"]*)"', rule["expr"]):
            assert job == JOB, rule["alert"]


# ---------------------------------------------------------------- dashboard


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(dash: dict) -> list[dict]:
    out = []
    for panel in dash["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def _dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    exprs = []
    for panel in _panels(dash):
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['id']} {panel.get('title')!r} {target.get('refId')}", target.get("expr", "")))
    for ann in dash.get("annotations", {}).get("list", []):
        if ann.get("expr"):
            exprs.append((f"annotation {ann['name']!r}", ann["expr"]))
    return exprs


def test_dashboard_is_importable():
    dash = _dashboard()
    assert dash["schemaVersion"] >= 36
    assert dash["title"] and dash["uid"]
    assert "id" not in dash or dash["id"] is None  # an import must not clash with an existing one
    panels = _panels(dash)
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids), "panel ids must be unique"
    cells = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel in dash["panels"]:  # no two top-level panels overlap
            mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not mine & cells, f"panel {panel['title']!r} overlaps another"
            cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("targets"), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
    for ann in dash.get("annotations", {}).get("list", []):
        if not ann.get("builtIn"):
            assert ann["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, ann["name"]
            assert ann.get("expr", "").strip(), ann["name"]


def test_dashboard_variables():
    dash = _dashboard()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name in ("flow", "connection"):
        var = variables[name]
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        assert query.startswith("label_values(") and query.rstrip(")").endswith(f", {name}"), query
        assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    # every $variable an expression uses is defined (or a Grafana built-in)
    defined = set(variables) | GRAFANA_BUILTINS
    for where, expr in _dashboard_exprs(dash):
        for var in re.findall(r"\$\{?(\w+)", expr):
            assert var in defined, f"{where}: ${var} is not a dashboard variable"


def test_dashboard_uses_only_exported_metrics():
    dash = _dashboard()
    exprs = _dashboard_exprs(dash)
    for var in dash["templating"]["list"]:
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query or "")
        if m:
            exprs.append((f"variable {var['name']}", m.group(1)))
            metrics, _ = promql_names(m.group(1))
            for metric in metrics:
                assert m.group(2) in EXPORTED.get(metric, set()) | TARGET_LABELS, f"{metric} has no label {m.group(2)}"
    bad = {where: problems(expr) for where, expr in exprs if problems(expr)}
    assert bad == {}


def test_dashboard_shows_every_daemon_metric():
    used = set()
    for _where, expr in _dashboard_exprs(_dashboard()):
        used |= promql_names(expr)[0]
    daemon = {name for name in EXPORTED if name.startswith("apicenterd_") and not name.endswith("_created")}
    # a histogram is shown through its buckets (or _sum/_count)
    shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
    missing = {n for n in daemon if n not in used and re.sub(r"_(bucket|sum|count)$", "", n) not in shown}
    assert missing == set(), f"not on the dashboard: {sorted(missing)}"


# ---------------------------------------------------------------- promtool, where installed

PROMTOOL_MISSING = "promtool is not installed (Debian/Ubuntu: apt-get install prometheus; scripts/test installs it when run as root)"


@pytest.fixture
def promtool() -> str:
    """The promtool binary. Missing: these tests skip for a developer, and fail in CI
    (``CI=true``), which must run them."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {PROMTOOL_MISSING}; the alert-rule tests must run in CI, not skip")
        pytest.skip(PROMTOOL_MISSING)
    return path


def test_promtool_checks_rules_and_config(promtool):
    for args in (["check", "rules", str(ALERTS)], ["check", "config", str(SCRAPE)]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, cwd=SCRAPE.parent)
        assert result.returncode == 0, result.stdout + result.stderr


def promtool_test(promtool: str, tmp_path: Path, tests: str, name: str = "alerts_test.yml") -> None:
    """``promtool test rules`` of ``tests`` (the YAML of a test file from ``tests:`` on) against the
    alert rules, on a copy without descriptions: promtool compares all annotations, so the tests
    check the summaries (`promtool check rules` has parsed the description templates)."""
    doc = yaml.safe_load(ALERTS.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            del rule["annotations"]["description"]
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(doc))
    path = tmp_path / name
    path.write_text(f"rule_files: [{rules}]\nevaluation_interval: 1m\n" + textwrap.dedent(tests))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_alerts_fire_with_flow_and_record_counts(tmp_path, promtool):
    """Feed series through the rules: a flow that only fails pages with its name; failed
    records open a ticket naming the flow, entity and count; a down daemon pages."""
    promtool_test(
        promtool,
        tmp_path,
        """
        tests:
          - interval: 1m
            input_series:
              - series: 'apicenterd_flow_runs_total{job="apicenterd", instance="a", flow="orders_to_eaccounting", status="failed"}'
                values: '0+1x90'
              - series: 'apicenterd_flow_runs_total{job="apicenterd", instance="a", flow="stock", status="ok"}'
                values: '0+1x90'
              - series: 'apicenterd_flow_runs_total{job="apicenterd", instance="b", flow="stock", status="failed"}'
                values: '0x90'
              - series: 'apicenterd_records_total{job="apicenterd", instance="a", flow="stock", entity="stock", action="failed"}'
                values: '0 0 0 0 0 3 3 3 3 3 3 3 3 3 3'
              - series: 'apicenterd_flow_last_success_timestamp_seconds{job="apicenterd", instance="a", flow="stock"}'
                values: '0x90'
              - series: 'apicenterd_flow_last_success_timestamp_seconds{job="apicenterd", instance="b", flow="stock"}'
                values: '4800x90'
              - series: 'up{job="apicenterd", instance="127.0.0.1:9464"}'
                values: '0x10'
            alert_rule_test:
              - eval_time: 70m
                alertname: ApicenterdFlowDown
                exp_alerts:
                  - exp_labels: {severity: critical, job: apicenterd, flow: orders_to_eaccounting}
                    exp_annotations:
                      summary: 'apicenterd flow orders_to_eaccounting: every run failed for over an hour'
              - eval_time: 11m
                alertname: ApicenterdRecordsFailing
                exp_alerts:
                  - exp_labels: {severity: warning, job: apicenterd, flow: stock, entity: stock}
                    exp_annotations:
                      summary: 'apicenterd flow stock: 3 stock records failed in 15 minutes'
              - eval_time: 6m
                alertname: ApicenterdDown
                exp_alerts:
                  - exp_labels: {severity: critical, job: apicenterd, instance: "127.0.0.1:9464"}
                    exp_annotations:
                      summary: 'apicenterd on 127.0.0.1:9464 is down (metrics endpoint not answering)'
              # daemon b ran the flow after a: the stale gauge on a must not raise the alarm
              - eval_time: 85m
                alertname: ApicenterdFlowNoRecentSuccess
                exp_alerts: []
        """,
    )


def test_promtool_auth_failures_paused_connections_and_long_waits_alert(tmp_path, promtool):
    """A refused refresh token (counted as an auth failure, whatever HTTP status the token endpoint
    gave) alerts; a paused connection pages; a call waiting 10+ minutes for its rate limit opens a
    ticket while it still waits."""
    promtool_test(
        promtool,
        tmp_path,
        """
        tests:
          - interval: 1m
            input_series:
              # the token endpoint's 400 invalid_grant: a 400 request, and an auth failure
              - series: 'apicenterd_api_requests_total{job="apicenterd", instance="a", connection="eaccounting", method="POST", status="400"}'
                values: '0 0 1 1 1 1 1 1 1 1'
              - series: 'apicenterd_auth_failures_total{job="apicenterd", instance="a", connection="eaccounting"}'
                values: '0 0 1 1 1 1 1 1 1 1'
              - series: 'apicenterd_connection_paused{job="apicenterd", instance="a", connection="eaccounting"}'
                values: '0 0 1 1 1 1 1 1 1 1'
              - series: 'apicenterd_connection_paused{job="apicenterd", instance="a", connection="salespos"}'
                values: '0x9'
              - series: 'apicenterd_rate_limit_waiting_seconds{job="apicenterd", instance="a", connection="exact"}'
                values: '0+60x20'
            alert_rule_test:
              - eval_time: 4m
                alertname: ApicenterdVendorAuthRejected
                exp_alerts:
                  - exp_labels: {severity: warning, job: apicenterd, connection: eaccounting}
                    exp_annotations:
                      summary: 'apicenterd connection eaccounting: the vendor rejected the credentials'
              - eval_time: 8m
                alertname: ApicenterdConnectionPaused
                exp_alerts:
                  - exp_labels: {severity: critical, job: apicenterd, connection: eaccounting}
                    exp_annotations:
                      summary: 'apicenterd connection eaccounting: paused, its flows do not run'
              - eval_time: 6m
                alertname: ApicenterdConnectionPaused
                exp_alerts: []
              - eval_time: 17m
                alertname: ApicenterdRateLimitWaitLong
                exp_alerts:
                  - exp_labels: {severity: warning, job: apicenterd, connection: exact}
                    exp_annotations:
                      summary: 'apicenterd connection exact: a call has been waiting 17m 0s for the rate limit'
              - eval_time: 12m
                alertname: ApicenterdRateLimitWaitLong
                exp_alerts: []
        """,
    )


def test_promtool_cluster_alerts_fire_when_no_daemon_is_alive_or_a_job_stalls(tmp_path, promtool):
    """Several daemons on PostgreSQL: a stalled job that stays stalled pages; so do zero live daemons
    (seen by a daemon), and no daemon scraped at all; one stalled check that clears stays silent."""
    promtool_test(
        promtool,
        tmp_path,
        """
        tests:
          - interval: 1m
            input_series:
              - series: 'up{job="apicenterd", instance="a"}'
                values: '1x20'
              - series: 'apicenterd_workers_alive{job="apicenterd", instance="a"}'
                values: '3 3 3 3 3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0'
              - series: 'apicenterd_jobs_stalled{job="apicenterd", instance="a"}'
                values: '0 1 0 0 0 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2'
            alert_rule_test:
              - eval_time: 4m
                alertname: ApicenterdFlowJobStalled
                exp_alerts: []
              - eval_time: 12m
                alertname: ApicenterdFlowJobStalled
                exp_alerts:
                  - exp_labels: {severity: critical, job: apicenterd}
                    exp_annotations:
                      summary: 'apicenterd: 2 flow run(s) held by a daemon that stopped answering'
              - eval_time: 4m
                alertname: ApicenterdNoWorkerAlive
                exp_alerts: []
              - eval_time: 8m
                alertname: ApicenterdNoWorkerAlive
                exp_alerts:
                  - exp_labels: {severity: critical, job: apicenterd}
                    exp_annotations:
                      summary: 'apicenterd: no daemon alive to run the flows'
          - interval: 1m
            input_series:
              - series: 'up{job="apicenterd", instance="a"}'
                values: '1 1 1 0 0 0 0 0 0 0'
              - series: 'up{job="apicenterd", instance="b"}'
                values: '1 1 1 1 1 0 0 0 0 0'
            alert_rule_test:
              - eval_time: 5m
                alertname: ApicenterdNoWorkerAlive
                exp_alerts: []
              - eval_time: 9m
                alertname: ApicenterdNoWorkerAlive
                exp_alerts:
                  - exp_labels: {severity: critical}
                    exp_annotations:
                      summary: 'apicenterd: no daemon alive to run the flows'
        """,
        name="cluster_test.yml",
    )
