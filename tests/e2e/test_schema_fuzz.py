"""The served OpenAPI schema tells the truth: property-based fuzzing of every operation.

Schemathesis reads `/schema/openapi.json` from the gateway running as a real process and
generates requests from it, both valid ones (positive) and ones that break the schema
(negative). Every answer must be no 5xx, a documented status, a body and headers that
match what the schema documents for that status, and the documented content type.

Derandomized, so a run is reproducible; `EXAMPLES` bounds it to about a minute. Failures
are collected over all operations and reported together, each with a curl command.
"""

from __future__ import annotations

import time
from collections import Counter

import hypothesis
import pytest
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

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
EXAMPLES = 40  # per operation and mode

FUZZ = hypothesis.settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # collect failures, do not shrink
    suppress_health_check=list(HealthCheck),
)


def fuzz_operation(operation, mode, base_url: str, headers: dict, session: requests.Session, seen: Counter, failures: list):
    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        seen[operation.label] += 1
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=10)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            failures.append(f"{mode.value} {operation.label}: {group}")

    run()


async def test_every_operation_answers_as_its_schema_documents(stack, api_headers):
    session = requests.Session()
    raw = session.get(f"{stack.base_url}/schema/openapi.json", timeout=10)
    assert raw.status_code == 200, raw.text
    schema = schemathesis.openapi.from_dict(raw.json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]

    seen: Counter = Counter()
    failures: list[str] = []
    started = time.monotonic()
    for operation in operations:
        for mode in MODES:
            fuzz_operation(operation, mode, stack.base_url, api_headers, session, seen, failures)
    elapsed = time.monotonic() - started

    summary = f"{len(operations)} operations, {sum(seen.values())} cases in {elapsed:.0f} s, {len(failures)} failures"
    print(summary, dict(seen))
    assert not failures, summary + "\n\n" + "\n".join(failures[:20])
    # Every operation really was exercised (a schema that generates nothing proves nothing).
    assert all(seen[op.label] >= EXAMPLES // 2 for op in operations), dict(seen)
