"""Offline checks of the Prometheus configuration and alert rules and the Grafana dashboard,
against each other and the engine's metric names.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics
from shared.retention import DAY_MS, DEFAULT_MAX_AGE_DAYS, MAX_RESTING_MS, MIN_MARGIN_MS
from tests.unit.deploy_kit import DEPLOY, METRICS_PORTS, compose, load_yaml

COUNTERS = {
    "engine_http_requests_total", "engine_orders_accepted_total", "engine_ws_messages_sent_total",
    "engine_events_handled_total", "engine_events_appended_total", "engine_append_conflicts_total",
    "engine_orders_terminal_total", "engine_execution_attempts_total", "engine_routes_selected_total",
    "engine_events_dead_lettered_total",
    "engine_resume_nudges_total",
    "engine_live_events_recovered_total", "engine_stale_reads_total",
}
GAUGES = {
    "engine_ws_connections", "engine_consumer_pending_messages", "engine_projector_lag_seconds",
    "engine_resting_orders", "engine_read_model_available", "engine_live_subscriptions", "engine_stream_bytes",
    "engine_stream_messages", "engine_stream_first_message_age_seconds", "engine_stream_max_bytes",
    "engine_stream_max_age_seconds", "engine_oldest_resting_order_age_seconds", "engine_book_rearm_seconds",
    "engine_consumer_ack_pending_messages", "engine_consumer_max_ack_pending", "engine_consumer_redelivered_messages",
    "engine_db_pool_connections",
}
HISTOGRAMS = {
    "engine_http_request_duration_seconds", "engine_event_handle_duration_seconds",
    "engine_order_duration_seconds", "engine_quote_duration_seconds", "engine_projector_batch_size",
    "engine_trigger_tick_seconds", "engine_order_stage_duration_seconds", "engine_db_query_duration_seconds",
}
# A classic histogram has no series under its bare name, only these three.
HISTOGRAM_SERIES = {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
KNOWN_SERIES = COUNTERS | GAUGES | HISTOGRAM_SERIES | {"up"}

PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects (functions, labels, keywords removed)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


# Prometheus and Grafana ------------------------------------------------------------------


def test_known_metric_names_are_exactly_the_metrics_the_services_define() -> None:
    defined: dict[str, set[str]] = {"counter": set(), "gauge": set(), "histogram": set()}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            defined[family.type].add(family.name)
    assert {f"{name}_total" for name in defined["counter"]} == COUNTERS
    assert defined["gauge"] == GAUGES
    assert defined["histogram"] == HISTOGRAMS


def test_metric_name_extraction_ignores_functions_labels_and_keywords() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, route) ("
        'rate(engine_x_bucket{status=~"5..", a="b c"}[5m] offset 1h)))'
        " / on(route) group_left(service) clamp_min(up, 1e-9) and vector(0) > bool 1"
    )
    assert metric_names(expr) == {"engine_x_bucket", "up"}
    assert not metric_names("engine_order_duration_seconds > 1") <= KNOWN_SERIES


@pytest.mark.parametrize("config_name", ["prometheus.yml", "k8s-scrape.yml"])
def test_prometheus_configurations_parse_and_load_existing_rule_files(config_name: str) -> None:
    config = load_yaml(DEPLOY / "prometheus" / config_name)
    assert config["rule_files"] and config["scrape_configs"]
    for rule_file in config["rule_files"]:
        assert (DEPLOY / "prometheus" / rule_file).is_file()


def test_compose_prometheus_scrapes_every_service_on_its_port() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, port in METRICS_PORTS.items():
        (sd,) = jobs[name]["dns_sd_configs"]
        assert sd["names"] == [name] and sd["port"] == port


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_are_complete_and_cover_the_operational_failures() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert {
        "GatewayHigh5xxRate", "ConsumerBacklogGrowing", "ProjectorLagHigh", "OrderFailureRatioHigh",
        "OrdersNotCompleting", "EngineTargetDown", "EventsDeadLettered",
    } <= set(names)
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert "> 30" in next(rule["expr"] for rule in rules if rule["alert"] == "ProjectorLagHigh")


def test_every_alert_links_the_section_of_its_runbook() -> None:
    for rule in alert_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path.startswith("deploy/runbooks/") and anchor == rule["alert"].lower(), rule["alert"]
        runbook = (DEPLOY.parent / path).read_text()
        assert f"\n## {rule['alert']}\n" in runbook, rule["alert"]
        assert "**What it means.**" in runbook and "**How to fix.**" in runbook, path


def test_resting_order_alerts_fire_on_slow_ticks_and_while_a_lost_book_is_recent() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    tick, book = rules["TriggerTickSlow"], rules["RestingBookEmptied"]
    assert "histogram_quantile(0.99" in tick["expr"] and re.search(r"\)\s*> 0\.4\s*$", tick["expr"])
    assert tick["for"] == "5m"
    assert "engine_resting_orders == 0" in book["expr"]
    window = re.search(r"offset (\d+)m > 100", book["expr"])
    # The expression holds only while the drop is younger than the offset: `for` must fit in it.
    assert window and book["for"].endswith("m") and int(book["for"][:-1]) < int(window.group(1))


def test_order_log_alerts_warn_before_the_byte_limit_and_a_day_before_an_open_order_ages_out() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for name in ("OrderLogFillsWithinHours", "OrderLogNearlyFull", "OrderLogFull", "OpenOrderNearLogRetention"):
        assert 'stream=~"(.+_)?ORDERS"' in rules[name]["expr"], name
    assert rules["OrderLogNearlyFull"]["labels"]["severity"] == "warning"
    assert re.search(r"/ \(max by \(stream\) \(engine_stream_max_bytes\{[^}]*\}\) > 0\)\s*> 0\.8\s*$", rules["OrderLogNearlyFull"]["expr"])
    assert "> (max by (stream) (engine_stream_max_bytes" in rules["OrderLogFillsWithinHours"]["expr"]  # no limit (-1): no alert
    assert rules["OrderLogFull"]["labels"]["severity"] == "critical" and "> 0.95" in rules["OrderLogFull"]["expr"]
    retention = rules["OpenOrderNearLogRetention"]
    assert "engine_oldest_resting_order_age_seconds" in retention["expr"] and retention["expr"].rstrip().endswith("- 86400")
    # A day's warning only means something if no order may rest into that last day.
    assert MAX_RESTING_MS + MIN_MARGIN_MS <= DEFAULT_MAX_AGE_DAYS * DAY_MS and MIN_MARGIN_MS >= DAY_MS


def test_alert_expressions_select_only_known_metrics() -> None:
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names and names <= KNOWN_SERIES, (rule["alert"], names - KNOWN_SERIES)


def dashboard_panels() -> list[dict[str, Any]]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "engine.json").read_text())
    return [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = dashboard_panels()
    ids = [panel["id"] for panel in panels]
    assert len(ids) >= 25 and len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        columns, rows = range(box["x"], box["x"] + box["w"]), range(box["y"], box["y"] + box["h"])
        area = {(x, y) for x in columns for y in rows}
        assert not area & cells, panel["title"]
        cells |= area


def test_dashboard_queries_use_known_metrics_and_show_every_engine_metric() -> None:
    seen: set[str] = set()
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names and names <= KNOWN_SERIES, (panel["title"], names - KNOWN_SERIES)
            seen |= names
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in seen}
    assert COUNTERS | GAUGES | HISTOGRAMS <= shown


def test_grafana_provisioning_matches_the_dashboard_and_compose_mounts() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "engine.json").read_text())
    (variable,) = dashboard["templating"]["list"]
    assert variable["type"] == "datasource" and variable["current"]["value"] == source["uid"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(provisioning / "dashboards" / "engine.yml")["providers"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
