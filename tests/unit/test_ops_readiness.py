"""Readiness needs the dependencies a service cannot work without; it only reports the others."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from shared.ops import ops_app


def answer(value: bool):
    async def check() -> bool:
        return value

    return check


async def failing() -> bool:
    raise ConnectionRefusedError("no server")


async def readyz(nats: bool, postgres) -> tuple[int, dict]:
    app = ops_app("gateway", {"nats": answer(nats)}, {"postgres": postgres})
    async with AsyncTestClient(app) as client:
        response = await client.get("/readyz")
    return response.status_code, response.json()


async def test_a_reported_dependency_that_answers_leaves_the_service_ready() -> None:
    assert await readyz(True, answer(True)) == (200, {"status": "ok", "checks": {"nats": True, "postgres": True}})


async def test_a_reported_dependency_that_does_not_answer_leaves_the_service_ready_but_degraded() -> None:
    expected = {"status": "degraded", "checks": {"nats": True, "postgres": False}}
    assert await readyz(True, answer(False)) == (200, expected)
    assert await readyz(True, failing) == (200, expected)


async def test_a_needed_dependency_that_does_not_answer_makes_the_service_unready() -> None:
    assert await readyz(False, answer(True)) == (
        503, {"status": "unavailable", "checks": {"nats": False, "postgres": True}},
    )


async def test_services_without_reported_dependencies_answer_as_before() -> None:
    async with AsyncTestClient(ops_app("router", {"nats": answer(True), "book": answer(False)})) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"nats": True, "book": False}}
