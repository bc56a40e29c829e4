"""Paths, service settings and YAML loading shared by the deployment-file tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

SERVICE_PORTS = {"gateway": 8000, "router": 9101, "executor": 9102, "projector": 9103}
# Where Prometheus scrapes /metrics: the gateway keeps it off its public port.
METRICS_PORTS = {"gateway": 9100, "router": 9101, "executor": 9102, "projector": 9103}
PORT_VARIABLES = {
    "gateway": "GATEWAY_PORT", "router": "OPS_PORT", "executor": "OPS_PORT", "projector": "OPS_PORT",
}
SHARED_SETTINGS = {
    "NATS_URL", "ENGINE_NAMESPACE", "STREAM_REPLICAS", "LOG_LEVEL", "LOG_FORMAT",
    "SIM_PROFILE", "SIM_SEED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
}
# Each service's own NATS user; only the gateway (reader) and projector (writer) get a database.
EXTRA_SETTINGS = {
    "gateway": {"GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_PUBLIC_URL", "OPS_PORT", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL"},
    "router": {"OPS_PORT", "NATS_USER", "NATS_PASSWORD"},
    "executor": {"OPS_PORT", "EXECUTOR_MAX_ATTEMPTS", "CHAIN_FAILURE_RATE", "NATS_USER", "NATS_PASSWORD"},
    "projector": {"OPS_PORT", "NATS_USER", "NATS_PASSWORD", "DATABASE_URL"},
}


# libyaml's parser when present: the pure-Python one makes these tests several times slower.
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=YamlLoader)


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=YamlLoader) if doc]


def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "compose.yaml")
