"""The served OpenAPI schema tells the truth: property-based fuzzing of every operation.

Schemathesis reads `/schema/openapi.json` from the gateway running as a real process and
generates requests from it, both valid ones (positive) and ones that break the schema
(negative). Every answer must be no 5xx, a documented status, a body and headers that
match what the schema documents for that status, and the documented content type.

Generated order ids and pairs almost never exist, so the same checks also run on requests
naming real orders (one finished, one resting) and a real pair, and on the documented
request examples, which must be accepted.

Derandomized, so a run is reproducible; `EXAMPLES` bounds it to about a minute. Failures
are collected over all operations and reported together, each with a curl command.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.client import market, submit, wait_terminal

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
# Failure reports hide the API key, but not the order fields (`tokenIn` looks secret by default).
CONFIG = {"output": {"sanitization": {"keys-to-sanitize": ["authorization", "x-api-key"], "sensitive-markers": ["api-key"]}}}
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
EXAMPLES = 60  # per operation and mode

FUZZ = hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # collect failures, do not shrink
    suppress_health_check=list(HealthCheck),
)


class Fuzz:
    """Sends cases to the gateway and keeps every check failure, so one run reports them all."""

    def __init__(self, base_url: str, headers: dict[str, str]):
        self.base_url = base_url
        self.headers = headers
        self.session = requests.Session()
        self.answers: Counter = Counter()  # (operation, status) -> count
        self.failures: list[str] = []

    def check(self, case, label: str) -> int:
        # Copies: requests adds its own headers to the mapping it is given.
        response = case.call(base_url=self.base_url, session=self.session, headers=dict(self.headers), timeout=10)
        self.answers[(case.operation.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=dict(self.headers))
        except FailureGroup as group:
            self.failures.append(f"{label} {case.operation.label}: {group}")
        return response.status_code

    def generated(self, operation, mode: schemathesis.GenerationMode) -> None:
        @FUZZ
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:
            self.check(case, mode.value)

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # An operation with no parameters and no body has nothing to break.
            assert mode is schemathesis.GenerationMode.NEGATIVE, f"no valid request for {operation.label}"


async def real_orders(base_url: str, headers: dict[str, str]) -> dict[str, str]:
    """A finished market order and a limit order resting far from the market."""
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as client:
        finished = (await submit(client, market()))["orderId"]
        await wait_terminal(client, finished)
        resting = await submit(client, market(amount="1", orderType="limit", limitPrice="100000"))
    return {"finished": finished, "resting": resting["orderId"]}


def documented_examples(raw: dict[str, Any]) -> dict[str, Any]:
    body = raw["components"]["requestBodies"]["Order"]["content"]["application/json"]
    return {name: example["value"] for name, example in body["examples"].items()}


def load_schema(base_url: str) -> tuple[dict[str, Any], schemathesis.BaseSchema]:
    raw = requests.get(f"{base_url}/schema/openapi.json", timeout=10).json()
    return raw, schemathesis.openapi.from_dict(raw, config=schemathesis.Config.from_dict(CONFIG))


def test_the_checks_catch_an_answer_the_schema_does_not_document(stack, api_headers):
    """The wiring can fail: a 5xx, or a body other than the documented one, is reported."""
    _, schema = load_schema(stack.base_url)
    case = schema["/api/orders/{orderId}"]["GET"].Case(path_parameters={"orderId": "ord_missing"})
    real = case.call(base_url=stack.base_url, headers=dict(api_headers), timeout=10)
    passed = []
    for status, body in ((500, real.content), (404, b'{"status_code": 404, "detail": "Not Found"}')):
        forged = requests.Response()
        forged.status_code, forged._content, forged.request = status, body, real.request
        forged.headers.update({"content-type": "application/json"})
        try:
            case.validate_response(forged, checks=CHECKS)
        except FailureGroup:
            continue
        passed.append((status, body))
    assert not passed, f"answers the schema does not document passed the checks: {passed}"


async def test_every_operation_answers_as_its_schema_documents(stack, api_headers):
    fuzz = Fuzz(stack.base_url, api_headers)
    raw, schema = load_schema(stack.base_url)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 11, [op.label for op in operations]
    orders = await real_orders(stack.base_url, api_headers)
    started = time.monotonic()

    for operation in operations:
        for mode in MODES:
            fuzz.generated(operation, mode)

    accepted = {}
    for operation in operations:
        if operation.method.upper() == "POST":
            for name, body in documented_examples(raw).items():
                case = operation.Case(body=body, media_type="application/json")
                accepted[(operation.label, name)] = fuzz.check(case, "example")
        elif "{orderId}" in operation.path:
            # Twice each: a second cancel answers differently from the first.
            for order_id in [*orders.values(), *orders.values()]:
                fuzz.check(operation.Case(path_parameters={"orderId": order_id}), "real order")
        elif operation.path == "/api/quotes":
            fuzz.check(operation.Case(query={"pair": "SOL-USDC"}), "real pair")
    elapsed = time.monotonic() - started

    cases = sum(fuzz.answers.values())
    summary = f"{len(operations)} operations, {cases} cases in {elapsed:.0f} s, {len(fuzz.failures)} failures"
    print(summary, sorted(fuzz.answers.items()))
    assert not fuzz.failures, summary + "\n\n" + "\n".join(fuzz.failures[:20])
    assert all(status in (200, 202) for status in accepted.values()), f"documented examples refused: {accepted}"
    # The real-order requests reached what they were meant to: each success status and a 409.
    for label in ("GET /api/orders/{orderId}", "GET /api/orders/{orderId}/events", "GET /api/quotes"):
        assert fuzz.answers[(label, 200)], (label, sorted(fuzz.answers.items()))
    assert fuzz.answers[("DELETE /api/orders/{orderId}", 409)], sorted(fuzz.answers.items())
