"""Offline checks of the Kubernetes NetworkPolicies: they validate against the API schemas,
and, evaluated against the manifests' pods and ports (tests/unit/netpol_kit.py), they allow
exactly the flows the engine needs and nothing else.
"""

from __future__ import annotations

import functools
from typing import Any

import kubernetes_validate
import pytest

from tests.unit.deploy_kit import K8S, load_yaml_documents
from tests.unit.netpol_kit import Cluster, Endpoint, External, Pod, selector_matches, workload_pods
from tests.unit.test_deploy_k8s import KUBERNETES_VERSIONS, NAMESPACE, container_env, k8s_objects, objects_of

# Where /metrics is served: each service's ops port. The gateway's moves off its public
# port to 9100 (OPS_PORT); the other three declare theirs as the container port `ops`.
METRICS_PORTS = {"gateway": 9100, "router": 9101, "executor": 9102, "projector": 9103}
NATS_CLIENTS = ("gateway", "router", "executor", "projector", "projector-rebuild", "setup")
POSTGRES_CLIENTS = ("gateway", "projector", "projector-rebuild", "setup")
# The address the managed-database placeholder in networkpolicies.yaml stands for.
MANAGED_POSTGRES_IP = "192.0.2.10"


@functools.cache
def engine_pods() -> dict[str, Pod]:
    """The pods of every workload in deploy/k8s, plus the setup Job's if no manifest has it yet."""
    pods = workload_pods(doc for _, doc in k8s_objects())
    labels = {"app.kubernetes.io/name": "setup", "app.kubernetes.io/part-of": "dex-engine"}
    pods.setdefault("setup", Pod("setup", NAMESPACE, labels))
    return pods


@functools.cache
def endpoints() -> dict[str, Endpoint]:
    """The engine's pods and the peers around them, labelled as deploy/README.md documents."""
    others = [
        Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": (53, "UDP"), "dns-tcp": (53, "TCP")}),
        Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
        Pod("grafana", "monitoring", {"app.kubernetes.io/name": "grafana"}),
        Pod("prometheus-elsewhere", "default", {"app.kubernetes.io/name": "prometheus"}),
        Pod("ingress-nginx", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
        Pod("ingress-nginx-elsewhere", "default", {"app.kubernetes.io/name": "ingress-nginx"}),
        Pod("shell", "default", {"app": "shell"}),
        # A pod someone starts in the engine's namespace (kubectl run, a debug container).
        Pod("stranger", NAMESPACE, {"app.kubernetes.io/name": "debug"}),
    ]
    outside = [External("internet", "203.0.113.7"), External("managed-postgres", MANAGED_POSTGRES_IP)]
    return {**engine_pods(), **{e.name: e for e in [*others, *outside]}}


@functools.cache
def cluster() -> Cluster:
    policies = tuple(doc for _, doc in k8s_objects() if doc["kind"] == "NetworkPolicy")
    namespace_labels = {NAMESPACE: objects_of("Namespace")[NAMESPACE]["metadata"]["labels"]}
    return Cluster(policies, namespace_labels)


def port(pod: str, name: str) -> int:
    return engine_pods()[pod].ports[name][0]


def required_flows() -> set[tuple[str, str, int, str]]:
    """(source, destination, port, protocol) of every flow the engine needs."""
    flows = {(name, "kube-dns", 53, protocol) for name, e in endpoints().items()
             if isinstance(e, Pod) and e.namespace == NAMESPACE for protocol in ("UDP", "TCP")}
    flows |= {(client, "nats", port("nats", "client"), "TCP") for client in NATS_CLIENTS}
    flows.add(("nats", "nats", port("nats", "cluster"), "TCP"))
    flows |= {(client, database, port("postgres", "postgres"), "TCP")
              for client in POSTGRES_CLIENTS for database in ("postgres", "managed-postgres")}
    flows.add(("ingress-nginx", "gateway", port("gateway", "http"), "TCP"))
    flows |= {("prometheus", service, metrics, "TCP") for service, metrics in METRICS_PORTS.items()}
    flows.add(("prometheus", "nats", port("nats", "monitor"), "TCP"))
    return flows


FORBIDDEN = [
    ("router", "postgres", 5432),
    ("executor", "postgres", 5432),
    ("router", "managed-postgres", 5432),
    ("executor", "managed-postgres", 5432),
    ("nats", "postgres", 5432),
    ("stranger", "postgres", 5432),
    ("gateway", "projector", 9103),
    ("gateway", "router", 9101),
    ("gateway", "executor", 9102),
    ("router", "executor", 9102),
    ("executor", "router", 9101),
    ("projector", "gateway", 8000),
    ("internet", "nats", 4222),
    ("internet", "gateway", 8000),
    ("internet", "postgres", 5432),
    ("shell", "gateway", 8000),
    ("shell", "nats", 4222),
    ("stranger", "nats", 4222),
    ("stranger", "gateway", 8000),
    ("ingress-nginx", "gateway", 9100),
    ("ingress-nginx", "router", 9101),
    ("ingress-nginx-elsewhere", "gateway", 8000),
    ("prometheus", "gateway", 8000),
    ("prometheus", "router", 9102),
    ("prometheus", "nats", 4222),
    ("prometheus", "postgres", 5432),
    ("prometheus-elsewhere", "router", 9101),
    ("grafana", "router", 9101),
    ("router", "nats", 6222),
    ("router", "nats", 8222),
    ("router", "internet", 443),
    ("executor", "internet", 443),
    ("gateway", "internet", 443),
    ("nats", "internet", 443),
    ("postgres", "internet", 443),
    ("router", "shell", 80),
]


def allowed(source: str, destination: str, port: int, protocol: str = "TCP") -> bool:
    every = endpoints()
    return cluster().allows(every[source], every[destination], port, protocol)


# The manifests --------------------------------------------------------------------------


def network_policies() -> list[dict[str, Any]]:
    return list(cluster().policies)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_network_policies_validate_strictly_against_the_api_schema(version: str) -> None:
    for policy in network_policies():
        kubernetes_validate.validate(policy, version, strict=True)
    assert len(network_policies()) >= 10


def test_strict_validation_rejects_a_misspelt_policy_field() -> None:
    (policy,) = load_yaml_documents(K8S / "postgres" / "networkpolicy.yaml")
    policy["spec"]["ingress"][0]["form"] = policy["spec"]["ingress"][0].pop("from")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(policy, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_base_applies_the_policies_and_the_postgres_overlay_its_own() -> None:
    base = load_yaml_documents(K8S / "kustomization.yaml")[0]["resources"]
    overlay = load_yaml_documents(K8S / "postgres" / "kustomization.yaml")[0]["resources"]
    assert "networkpolicies.yaml" in base and "networkpolicy.yaml" in overlay
    names = [policy["metadata"]["name"] for policy in network_policies()]
    assert len(names) == len(set(names))


def test_every_pod_in_the_namespace_is_denied_both_ways_by_default() -> None:
    (deny,) = [p for p in network_policies() if p["metadata"]["name"] == "default-deny"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_every_policy_selects_pods_by_label_that_exist() -> None:
    pods = [pod for pod in engine_pods().values() if pod.namespace == NAMESPACE]
    for policy in network_policies():
        selected = [pod for pod in pods if selector_matches(policy["spec"]["podSelector"], pod.labels)]
        assert selected, policy["metadata"]["name"]
    # The one ipBlock is the documented placeholder for a managed database.
    blocks = [peer["ipBlock"] for policy in network_policies() for rule in policy["spec"].get("egress", [])
              for peer in rule.get("to", []) if "ipBlock" in peer]
    assert blocks == [{"cidr": "192.0.2.0/24"}]
    assert not [p for p in network_policies() for rule in p["spec"].get("ingress", [])
                for peer in rule.get("from", []) if "ipBlock" in peer]


def test_the_ports_in_the_graph_are_the_ones_the_manifests_listen_on() -> None:
    assert (port("nats", "client"), port("nats", "cluster"), port("nats", "monitor")) == (4222, 6222, 8222)
    assert port("postgres", "postgres") == 5432 and port("gateway", "http") == 8000
    for name, deployment in objects_of("Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env, ports = container_env(container), engine_pods()[name].ports
        # The gateway gains its ops port (OPS_PORT, default 9100) separately; once declared,
        # it must be the one the policy opens.
        if name != "gateway":
            assert "ops" in ports and "OPS_PORT" in env, name
        if "ops" in ports:
            assert port(name, "ops") == METRICS_PORTS[name], name
        if "OPS_PORT" in env:
            assert int(env["OPS_PORT"]) == METRICS_PORTS[name], name


# The policy graph -----------------------------------------------------------------------


@pytest.mark.parametrize("flow", sorted(required_flows()), ids=lambda f: f"{f[0]}->{f[1]}:{f[2]}/{f[3]}")
def test_each_flow_the_engine_needs_is_allowed(flow: tuple[str, str, int, str]) -> None:
    assert allowed(*flow)


@pytest.mark.parametrize("flow", FORBIDDEN, ids=lambda f: f"{f[0]}->{f[1]}:{f[2]}")
def test_each_forbidden_flow_is_denied(flow: tuple[str, str, int]) -> None:
    assert not allowed(*flow)


def test_the_policies_allow_exactly_the_flows_the_engine_needs() -> None:
    """Every endpoint to every endpoint on every port in play, plus an unused one: the
    allowed set involving the engine's namespace is the required set, no more."""
    every = endpoints()
    ports = {(number, protocol) for pod in every.values() if isinstance(pod, Pod)
             for number, protocol in pod.ports.values()}
    ports |= {(number, "TCP") for number in [*METRICS_PORTS.values(), 80, 443, 12345]} | {(12345, "UDP")}
    opened = {
        (source, destination, number, protocol)
        for source, a in every.items()
        for destination, b in every.items()
        if NAMESPACE in {getattr(a, "namespace", None), getattr(b, "namespace", None)}
        for number, protocol in ports
        if cluster().allows(a, b, number, protocol)
    }
    assert opened == required_flows()


def test_router_and_executor_accept_only_prometheus_on_their_metrics_port() -> None:
    every = endpoints()
    for service in ("router", "executor"):
        sources = {(name, number) for name in every for number in range(9000, 9200)
                   if cluster().allows(every[name], every[service], number)}
        assert sources == {("prometheus", METRICS_PORTS[service])}


# The evaluator itself --------------------------------------------------------------------


def policy(spec: dict[str, Any], namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": spec}


A = Pod("a", "ns", {"app": "a"})
B = Pod("b", "ns", {"app": "b"}, {"web": (8080, "TCP")})
C = Pod("c", "other", {"app": "a"})
OUT = External("out", "198.51.100.9")


def test_evaluator_leaves_unselected_pods_open_and_denies_selected_ones_without_rules() -> None:
    assert Cluster(()).allows(A, B, 8080)
    deny_b = Cluster((policy({"podSelector": {"matchLabels": {"app": "b"}}}),))
    assert not deny_b.allows(A, B, 8080) and deny_b.allows(B, A, 8080)
    # No policyTypes and no egress: the policy isolates ingress only.
    assert deny_b.allows(B, OUT, 443)
    deny_egress = Cluster((policy({"podSelector": {}, "egress": []}),))
    assert not deny_egress.allows(A, OUT, 443) and not deny_egress.allows(OUT, A, 443)


def test_evaluator_needs_both_egress_and_ingress_and_unions_the_rules() -> None:
    open_to_a = policy({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}],
                        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "b"}}}]}]})
    assert Cluster((open_to_a,)).allows(A, B, 8080)
    assert not Cluster((open_to_a,)).allows(B, A, 8080)
    deny = policy({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    assert Cluster((deny, open_to_a)).allows(A, B, 8080)


def test_evaluator_reads_peers_as_and_within_one_entry_and_or_across_entries() -> None:
    both = {"namespaceSelector": {"matchLabels": {"team": "x"}}, "podSelector": {"matchLabels": {"app": "a"}}}
    one = Cluster((policy({"podSelector": {}, "ingress": [{"from": [both]}]}),), {"other": {"team": "x"}})
    assert one.allows(C, B, 8080) and not one.allows(A, B, 8080)
    either = [{"namespaceSelector": both["namespaceSelector"]}, {"podSelector": both["podSelector"]}]
    two = Cluster((policy({"podSelector": {}, "ingress": [{"from": either}]}),), {"other": {"team": "x"}})
    assert two.allows(C, B, 8080) and two.allows(A, B, 8080)
    by_name = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}
    assert Cluster((policy({"podSelector": {}, "ingress": [{"from": [by_name]}]}),)).allows(C, B, 8080)


def test_evaluator_matches_ports_named_numbered_ranged_and_by_protocol() -> None:
    def only(*ports: dict[str, Any]) -> Cluster:
        return Cluster((policy({"podSelector": {}, "ingress": [{"ports": list(ports)}]}),))

    assert only({"port": "web"}).allows(A, B, 8080) and not only({"port": "web"}).allows(B, A, 8080)
    assert only({"port": 8000, "endPort": 8100}).allows(A, B, 8080)
    assert not only({"port": 8080, "protocol": "UDP"}).allows(A, B, 8080)
    assert only({"protocol": "TCP"}).allows(A, B, 1)


def test_evaluator_matches_ip_blocks_only_outside_the_cluster() -> None:
    block = {"ipBlock": {"cidr": "198.51.100.0/24", "except": ["198.51.100.9/32"]}}
    egress = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [block]}]})
    assert not Cluster((egress,)).allows(A, OUT, 443)
    assert Cluster((egress,)).allows(A, External("near", "198.51.100.10"), 443)
    assert not Cluster((egress,)).allows(A, B, 8080)


def test_evaluator_supports_the_set_based_selector_operators() -> None:
    def into_b(*expressions: dict[str, Any]) -> bool:
        peer = {"podSelector": {"matchExpressions": list(expressions)}}
        return Cluster((policy({"podSelector": {}, "ingress": [{"from": [peer]}]}),)).allows(A, B, 8080)

    assert into_b({"key": "app", "operator": "In", "values": ["a", "z"]})
    assert not into_b({"key": "app", "operator": "NotIn", "values": ["a"]})
    assert into_b({"key": "tier", "operator": "NotIn", "values": ["web"]})
    assert into_b({"key": "app", "operator": "Exists"})
    assert not into_b({"key": "app", "operator": "DoesNotExist"})
