"""A small evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), so the
deployment tests can check the policy graph offline against the manifests' pods.

What it models, after the API reference:
- A pod is isolated for a direction when some policy in its namespace selects it and lists
  that direction in policyTypes (Ingress always, Egress when the spec has `egress`, if
  policyTypes is absent). A pod no policy isolates accepts or sends anything.
- An isolated pod allows a connection when any rule of any policy isolating it does: the
  rules are a union, so a default-deny policy with no rules only turns isolation on.
- A connection needs the source's egress and the destination's ingress.
- A rule with no peers matches every peer, with no ports every port. A peer with both
  namespaceSelector and podSelector matches pods satisfying both; podSelector alone means
  the policy's own namespace. Named ports resolve on the destination pod.
- ipBlock peers match only endpoints outside the cluster: for pod IPs the behaviour is left
  to the implementation, so the engine's policies never rely on it.
Traffic from a pod's own node (kubelet probes) is never filtered and is not modelled.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator

Labels = Mapping[str, str]
Policy = Mapping[str, Any]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Pod:
    """A pod (or every replica of one workload), with its named container ports."""

    name: str
    namespace: str
    labels: Labels = field(hash=False)
    ports: Mapping[str, tuple[int, str]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class External:
    """An address outside the cluster (a client on the internet, a managed database)."""

    name: str
    ip: str


Endpoint = Pod | External


def selector_matches(selector: Mapping[str, Any] | None, labels: Labels) -> bool:
    """A LabelSelector against a label set; an empty or absent selector matches everything."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        matched = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matched:
            return False
    return True


def policy_types(policy: Policy) -> set[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return set(spec["policyTypes"])
    return {"Ingress"} | ({"Egress"} if "egress" in spec else set())


@dataclass(frozen=True)
class Cluster:
    """Namespaces with their labels and the policies in force; answers whether a flow passes."""

    policies: tuple[Policy, ...]
    namespace_labels: Mapping[str, Labels] = field(default_factory=dict)

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        """Whether a connection from source to destination's port gets through both ends."""
        return self._passes(source, "Egress", "to", destination, destination, port, protocol) and self._passes(
            destination, "Ingress", "from", source, destination, port, protocol
        )

    def _passes(
        self, pod: Endpoint, direction: str, peers_key: str, peer: Endpoint,
        destination: Endpoint, port: int, protocol: str,
    ) -> bool:
        if not isinstance(pod, Pod):
            return True  # outside the cluster no policy applies
        isolating = list(self._isolating(pod, direction))
        if not isolating:
            return True
        return any(
            self._peers_match(rule.get(peers_key), policy["metadata"]["namespace"], peer)
            and ports_match(rule.get("ports"), destination, port, protocol)
            for policy in isolating
            for rule in policy["spec"].get(direction.lower()) or []
        )

    def _isolating(self, pod: Pod, direction: str) -> Iterator[Policy]:
        for policy in self.policies:
            if (
                policy["metadata"]["namespace"] == pod.namespace
                and direction in policy_types(policy)
                and selector_matches(policy["spec"].get("podSelector"), pod.labels)
            ):
                yield policy

    def _peers_match(self, peers: list[Mapping[str, Any]] | None, namespace: str, endpoint: Endpoint) -> bool:
        if not peers:
            return True
        return any(self._peer_matches(peer, namespace, endpoint) for peer in peers)

    def _peer_matches(self, peer: Mapping[str, Any], namespace: str, endpoint: Endpoint) -> bool:
        if "ipBlock" in peer:
            if not isinstance(endpoint, External):
                return False
            address, block = ipaddress.ip_address(endpoint.ip), peer["ipBlock"]
            excepted = any(address in ipaddress.ip_network(cidr) for cidr in block.get("except", []))
            return address in ipaddress.ip_network(block["cidr"]) and not excepted
        if not isinstance(endpoint, Pod):
            return False
        if "namespaceSelector" in peer:
            if not selector_matches(peer["namespaceSelector"], self.labels_of(endpoint.namespace)):
                return False
        elif endpoint.namespace != namespace:
            return False
        return selector_matches(peer.get("podSelector"), endpoint.labels)

    def labels_of(self, namespace: str) -> Labels:
        # Kubernetes labels every namespace with its own name.
        return {**self.namespace_labels.get(namespace, {}), NAMESPACE_NAME_LABEL: namespace}


def ports_match(entries: list[Mapping[str, Any]] | None, destination: Endpoint, port: int, protocol: str) -> bool:
    """Whether a rule's `ports` admit the destination port (named ports resolve on the destination)."""
    if not entries:
        return True
    for entry in entries:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if isinstance(destination, Pod) and destination.ports.get(wanted) == (port, protocol):
                return True
        elif wanted <= port <= entry.get("endPort", wanted):
            return True
    return False


def workload_pods(objects: Iterable[Mapping[str, Any]]) -> dict[str, Pod]:
    """The pod of each Deployment, StatefulSet and Job, keyed by its app.kubernetes.io/name."""
    pods: dict[str, Pod] = {}
    for doc in objects:
        if doc["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        template = doc["spec"]["template"]
        labels = template["metadata"]["labels"]
        ports = {
            port["name"]: (port["containerPort"], port.get("protocol", "TCP"))
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
        }
        name = labels["app.kubernetes.io/name"]
        pods[name] = Pod(name, doc["metadata"]["namespace"], labels, ports)
    return pods
