"""The gateway's OpenAPI document, read without a server: what it promises and what it no longer says."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
from litestar import Request

from services.gateway.app import create_app
from services.gateway.errors import ApiError, on_api_error
from services.gateway.intake import FIELDS, parse_order
from services.gateway.settings import GatewaySettings

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
REQUEST = Request({"type": "http", "method": "GET", "path": "/api/orders/o", "headers": []})


@pytest.fixture(scope="module")
def schema() -> dict:
    return create_app(GatewaySettings()).openapi_schema.to_schema()


def order_schemas(schema: dict) -> dict[str, dict]:
    body = schema["components"]["requestBodies"]["Order"]["content"]["application/json"]
    return {s["title"]: s for s in body["schema"]["oneOf"]}


def test_every_documented_order_example_is_accepted_by_intake(schema):
    examples = schema["components"]["requestBodies"]["Order"]["content"]["application/json"]["examples"]
    assert set(examples) == {"market", "limit", "sniper"}
    now_ms = time.time_ns() // 1_000_000  # the examples' expiries are a week from when the schema was made
    for name, example in examples.items():
        spec = parse_order(json.dumps(example["value"]).encode(), now_ms)
        assert spec.order_type == name


def test_each_order_type_documents_exactly_the_fields_intake_accepts(schema):
    for title, order_type in (("MarketOrder", "market"), ("LimitOrder", "limit"), ("SniperOrder", "sniper")):
        documented = order_schemas(schema)[title]
        assert set(documented["properties"]) == FIELDS[order_type]
        assert documented["additionalProperties"] is False


def test_both_order_posts_take_the_order_body_and_answer_202_or_200(schema):
    for path in ("/api/orders", "/api/orders/execute"):
        post = schema["paths"][path]["post"]
        assert post["requestBody"] == {"$ref": "#/components/requestBodies/Order"}
        for status in ("200", "202"):
            assert post["responses"][status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Submitted"
            }


def test_no_operation_documents_an_error_body_the_gateway_never_sends(schema):
    # Litestar's default ValidationException body has `status_code`; the gateway answers ErrorBody.
    assert '"status_code"' not in json.dumps(schema)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path.startswith("/api"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ErrorBody", (method, path, status)


def test_every_api_operation_needs_a_key_and_documents_401_and_429(schema):
    assert set(schema["components"]["securitySchemes"]) == {"bearerKey", "apiKeyHeader"}
    for path, item in schema["paths"].items():
        for operation in item.values():
            if path.startswith("/api"):
                assert operation["security"] == [{"bearerKey": []}, {"apiKeyHeader": []}]
                assert {"401", "429"} <= set(operation["responses"])
                assert operation["responses"]["429"]["headers"]["Retry-After"]["required"] is True
            else:
                assert "security" not in operation


def test_an_error_carries_only_the_keys_that_apply():
    plain = on_api_error(REQUEST, ApiError(404, "order_not_found", "no order", field="orderId"))
    assert msgspec.to_builtins(plain.content) == {"error": "order_not_found", "detail": "no order", "field": "orderId"}
    refusal = on_api_error(REQUEST, ApiError(409, "not_cancellable", "too late", extra={"orderId": "o", "status": "submitted"}))
    assert msgspec.to_builtins(refusal.content) == {
        "error": "not_cancellable", "detail": "too late", "orderId": "o", "status": "submitted"
    }


def test_an_error_with_a_key_the_schema_does_not_declare_is_refused():
    with pytest.raises(msgspec.ValidationError):
        on_api_error(REQUEST, ApiError(400, "invalid_field", "x", extra={"undeclared": 1}))


def test_both_order_posts_document_the_503_of_an_unconfirmed_submission(schema):
    for path in ("/api/orders", "/api/orders/execute"):
        unavailable = schema["paths"][path]["post"]["responses"]["503"]
        assert unavailable["headers"]["Retry-After"]["required"] is True
        assert "accept_deadline_missed" in unavailable["description"] and "clientOrderId" in unavailable["description"]
        example = unavailable["content"]["application/json"]["examples"]["not_accepted"]["value"]
        assert example["error"] == "not_accepted" and example["orderId"]
    read = schema["paths"]["/api/orders/{orderId}"]["get"]["responses"]["503"]
    assert "not_accepted" not in read["content"]["application/json"]["examples"]
