"""The dashboard and the alerts against a real Prometheus scraping a real stack.

The deployed Prometheus configuration (deploy/prometheus/prometheus.yml, with its alert
rules) scrapes the four services of a stack, its discovery swapped for the stack's ops
ports and its intervals shortened to a second. A few orders (market, multihop, split, one
without a route, a resting limit order cancelled, an immediate-or-cancel order that
expires, a sniper order) make the series exist. Then every query of the Grafana dashboard
and every alert expression is evaluated through Prometheus's HTTP API, and each must return
data, unless it is listed below as empty by design.

An alert expression is empty while the system is healthy: it returns only what breaks its
threshold. So each is evaluated as its verdict: every comparison at its top level becomes a
`bool` comparison, which returns 0 or 1 for every series the alert watches. An alert whose
inputs do not exist (a misspelt metric, a label no service sets) returns nothing either way.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator

import httpx
import pytest
import yaml

from engine_client import OrderView
from tests.e2e.client import market, stream, submit, wait_terminal
from tests.e2e.conftest import ROOT, Stack, own_stack, service_of
from tests.e2e.foresight import IMMUNE_SLIPPAGE_BPS
from tests.helpers import eventually, free_port
from tests.ops.conftest import require

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "engine.json"

# Grafana's variables in the dashboard's queries, as Grafana would fill them in here. A
# minute covers the whole test at a one-second scrape interval.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1s", "__range": "1m"}

# Expressions known to return nothing on a healthy stack a minute old, and why.
EMPTY_BY_DESIGN = {
    "alert EngineServiceMissing": "absent() returns a series only while no target of a service is scraped",
    "alert RestingBookEmptied": "compares with the book 5 minutes ago (offset 5m); this Prometheus is younger",
}

# Routers report the oldest resting order every second (its gauge exists within the test).
stack = own_stack({"BOOK_SNAPSHOT_INTERVAL_S": "1"})


def test_the_alert_rules_pass_promtool() -> None:
    checked = subprocess.run([require("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture(scope="module")
async def prometheus(stack: Stack, tmp_path_factory) -> AsyncIterator[str]:
    """A Prometheus with the deployed configuration, scraping `stack` every second."""
    binary = require("prometheus")
    home = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    (home / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(stack, port)))
    with open(home / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _ready(url), timeout=30, interval=0.2,
                         message=f"prometheus ready ({home / 'prometheus.log'})")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def scrape_config(stack: Stack, port: int) -> dict:
    """deploy/prometheus/prometheus.yml with the stack's ops ports (and `port`, its own) for targets
    and 1 s intervals."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / "prometheus" / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
            continue
        ports = [port for name, port in stack.ops_ports.items() if service_of(name) == job["job_name"]]
        assert ports and "dns_sd_configs" in job, job["job_name"]
        del job["dns_sd_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}" for port in ports]}]
    return config


async def _ready(url: str) -> bool:
    async with httpx.AsyncClient(timeout=1) as client:
        try:
            return (await client.get(f"{url}/-/ready")).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="module")
async def traffic(stack: Stack) -> dict[str, OrderView]:
    """Orders that end in every terminal status, through every route kind; their final views."""
    async with stack.client(timeout=30) as client:
        bodies = {
            "market": market("0.5"),
            "multihop": {"tokenIn": "JUP", "tokenOut": "SOL", "amount": "500"},
            "split": market("20000", slippageBps=500),
            "no route": market("1", token_out="PUMP"),  # no pool of PUMP yet
            "immediate or cancel": {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1",
                                    "limitPrice": "100000", "timeInForce": "IOC"},
            "sniper": {"orderType": "sniper", "tokenIn": "USDC", "tokenOut": "SOL", "amount": "20",
                       "slippageBps": IMMUNE_SLIPPAGE_BPS},  # its pool is open: it fires at once
        }
        orders = {name: await submit(client, body) for name, body in bodies.items()}
        resting = await submit(client, {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1",
                                        "limitPrice": "100000"})
        await eventually(lambda: _status(client, resting["orderId"], "open"), message="limit order resting")
        assert (await client.delete(f"/api/orders/{resting['orderId']}")).status_code == 200
        orders["cancelled"] = resting
        assert (await client.post("/api/orders/execute", json={"tokenIn": "SOL"})).status_code == 400
        await stream(stack, orders["market"]["orderId"])  # a WebSocket client, for the socket figures
        views = {name: await wait_terminal(client, order["orderId"]) for name, order in orders.items()}
    # The outcomes the chain's random failures cannot change (the others end confirmed, or failed
    # when every attempt failed).
    assert views["no route"].status == "failed" and views["no route"].failure_code == "no_route"
    assert views["immediate or cancel"].status == "expired" and views["cancelled"].status == "cancelled"
    return views


async def _status(client: httpx.AsyncClient, order_id: str, status: str) -> bool:
    return (await client.get(f"/api/orders/{order_id}")).json()["status"] == status


def dashboard_queries() -> dict[str, str]:
    """Every query of the dashboard, by panel title and position, Grafana's variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = {}
    for top in dashboard["panels"]:
        for panel in [top, *top.get("panels", [])]:
            for number, target in enumerate(panel.get("targets", []), 1):
                queries[f"{panel['title']} #{number}"] = fill_variables(target["expr"])
    return queries


def fill_variables(expr: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in GRAFANA_VARIABLES, f"dashboard variable ${name} has no value in this test"
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def alert_verdicts() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {f"alert {rule['alert']}": verdict(rule["expr"]) for group in groups for rule in group["rules"]}


_COMPARISON = re.compile(r"==|!=|>=|<=|>|<")


def verdict(expr: str) -> str:
    """`expr` with every comparison at its top level made a `bool` comparison (0 or 1, never dropped)."""
    out, depth, i = [], 0, 0
    while i < len(expr):
        char = expr[i]
        if char in "\"'":
            end = expr.index(char, i + 1)
            while expr[end - 1] == "\\":
                end = expr.index(char, end + 1)
            out.append(expr[i:end + 1])
            i = end + 1
            continue
        depth += (char in "([{") - (char in ")]}")
        match = _COMPARISON.match(expr, i) if depth == 0 else None
        if match is None:
            out.append(char)
            i += 1
            continue
        out.append(match.group() + (" bool" if not re.match(r"\s*bool\b", expr[match.end():]) else ""))
        i = match.end()
    return "".join(out)


def test_a_verdict_keeps_the_series_an_alert_watches_and_leaves_inner_filters_alone() -> None:
    assert verdict('a{x!="1"} > 0.5 and (b or vector(0)) == 0') == 'a{x!="1"} > bool 0.5 and (b or vector(0)) == bool 0'
    assert verdict("max(a) / (max(b) > 0) >= bool 1") == "max(a) / (max(b) > 0) >= bool 1"


async def empty_expressions(url: str, expressions: dict[str, str]) -> dict[str, str]:
    """The expressions that return no series (or fail), with Prometheus's answer."""
    empty = {}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for name, expr in expressions.items():
            answer = (await client.get("/api/v1/query", params={"query": expr})).json()
            if answer["status"] != "success" or not answer["data"]["result"]:
                empty[name] = f"{expr}  ->  {answer.get('error') or 'no series'}"
    return empty


@pytest.fixture(scope="module")
def expressions() -> dict[str, str]:
    queries, verdicts = dashboard_queries(), alert_verdicts()
    assert len(queries) > 40 and len(verdicts) > 15
    assert EMPTY_BY_DESIGN.keys() <= verdicts.keys() | queries.keys()
    return queries | verdicts


async def test_every_dashboard_query_and_alert_returns_data_once_orders_ran(prometheus, traffic, expressions) -> None:
    # Scrapes and rule evaluations run every second; the last orders' figures land within a few.
    await eventually(lambda: _only_empty_by_design(prometheus, expressions), timeout=45, interval=1,
                     message="every expression but those empty by design returning data")


async def _only_empty_by_design(url: str, expressions: dict[str, str]) -> bool:
    empty = await empty_expressions(url, expressions)
    unexpected = {name: empty.get(name, "returned data, yet is listed as empty by design")
                  for name in empty.keys() ^ EMPTY_BY_DESIGN.keys()}
    assert not unexpected, json.dumps(unexpected, indent=1)
    return True


async def test_prometheus_evaluates_every_alert_rule_without_error(prometheus, traffic) -> None:
    await eventually(lambda: _rules_healthy(prometheus), timeout=15, interval=0.5,
                     message="every alert rule loaded and evaluated without error")


async def _rules_healthy(url: str) -> bool:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        groups = (await client.get("/api/v1/rules")).json()["data"]["groups"]
    rules = {f"alert {rule['name']}": rule for group in groups for rule in group["rules"]}
    assert rules.keys() == alert_verdicts().keys()
    unhealthy = {name: rule.get("lastError") or rule["health"] for name, rule in rules.items() if rule["health"] != "ok"}
    assert not unhealthy, unhealthy
    return True
