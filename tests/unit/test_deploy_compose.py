"""Offline checks of compose.yaml and the Dockerfile for internal consistency."""

from __future__ import annotations

import re
import tomllib

from tests.unit.deploy_kit import (
    EXTRA_SETTINGS,
    PORT_VARIABLES,
    ROOT,
    SERVICE_PORTS,
    SHARED_SETTINGS,
    compose,
)


# compose.yaml and the image --------------------------------------------------------------


def test_compose_services_have_an_image_or_build_and_depend_on_healthy_services() -> None:
    services = compose()["services"]
    assert {"nats", "postgres", "prometheus", "grafana", *SERVICE_PORTS} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for target, condition in service.get("depends_on", {}).items():
            if target == "setup":  # the one-shot admin step: waited for until it succeeds
                assert condition["condition"] == "service_completed_successfully", name
                continue
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


def test_compose_runs_the_set_up_step_as_admin_and_each_service_as_its_own_user() -> None:
    services = compose()["services"]
    setup = services["setup"]
    assert setup["command"] == ["python", "-m", "tools.setup"] and setup["environment"]["NATS_USER"] == "admin"
    assert "SETUP_DATABASE_URL" in setup["environment"]
    for name in SERVICE_PORTS:
        env = services[name]["environment"]
        assert env["NATS_USER"] == name
        assert env["NATS_PASSWORD"].startswith(f"${{NATS_PASSWORD_{name.upper()}:?")
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert services["gateway"]["environment"]["DATABASE_URL"].startswith("postgresql://engine_reader:${")
    assert services["projector"]["environment"]["DATABASE_URL"].startswith("postgresql://engine_writer:${")
    assert "DATABASE_URL" not in services["router"]["environment"]
    assert "DATABASE_URL" not in services["executor"]["environment"]
    assert "./deploy/nats/auth.conf:/etc/nats/auth.conf:ro" in services["nats"]["volumes"]
