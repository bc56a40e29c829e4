import json

import pytest

from services.gateway.errors import ApiError
from services.gateway.intake import parse_order


NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def body(**fields):
    return json.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", **fields}).encode()


def test_a_market_order_is_normalised_to_base_units_and_known_symbols():
    spec = parse_order(body(tokenIn="sol", amount=1.5), NOW)
    assert (spec.token_in, spec.token_out, spec.amount_in, spec.slippage_bps, spec.order_type) == (
        "SOL", "USDC", 1_500_000_000, 50, "market")


def test_the_same_order_written_differently_has_the_same_request_hash():
    assert parse_order(body(amount="1.50"), NOW).request_hash == parse_order(body(amount=1.5, tokenIn="Sol"), NOW).request_hash
    assert parse_order(body(amount="1.5"), NOW).request_hash != parse_order(body(amount="1.6"), NOW).request_hash


@pytest.mark.parametrize("raw,field", [
    (b"{", "body"), (b"null", "body"), (body(tokenIn="XYZ"), "tokenIn"), (body(tokenOut="SOL"), "tokenOut"),
    (body(amount="0"), "amount"), (body(amount=None), "amount"), (body(amount=[1]), "amount"),
    (body(slippageBps=5001), "slippageBps"), (body(slippageBps=True), "slippageBps"),
    (body(orderType="stop"), "orderType"), (body(extra=1), "extra"), (body(clientOrderId=""), "clientOrderId"),
])
def test_bad_fields_are_named(raw, field):
    with pytest.raises(ApiError) as caught:
        parse_order(raw, NOW)
    assert caught.value.status == 400 and caught.value.field == field and caught.value.detail


def test_a_limit_order_turns_its_price_into_a_minimum_output_rounded_up():
    spec = parse_order(body(orderType="limit", amount="2", limitPrice="150.0000005"), NOW)
    # 2 SOL at >= 150.0000005 USDC each: at least 300.000001 USDC
    assert spec.min_out == 300_000_001 and spec.time_in_force == "GTC" and spec.limit_price == "150.0000005"


def test_a_gtd_order_needs_a_future_expiry_and_other_time_in_force_refuse_one():
    spec = parse_order(body(orderType="limit", limitPrice=150, timeInForce="GTD", expiresAt="2026-01-01T00:10:00Z"), NOW)
    assert spec.expires_at == NOW + 600_000
    for raw, field in (
        (body(orderType="limit", limitPrice=150, timeInForce="GTD"), "expiresAt"),
        (body(orderType="limit", limitPrice=150, timeInForce="GTD", expiresAt="2025-12-31T23:00:00Z"), "expiresAt"),
        (body(orderType="limit", limitPrice=150, timeInForce="IOC", expiresAt=NOW + 1000), "expiresAt"),
        (body(orderType="limit", limitPrice=150, timeInForce="FOK"), "timeInForce"),
        (body(orderType="limit"), "limitPrice"),
        (body(orderType="limit", limitPrice="-1"), "limitPrice"),
        (body(orderType="limit", limitPrice="1e3"), "limitPrice"),
        (body(limitPrice=150), "limitPrice"),
    ):
        with pytest.raises(ApiError) as caught:
            parse_order(raw, NOW)
        assert caught.value.field == field, raw


def test_a_sniper_order_turns_its_max_price_into_a_minimum_output():
    spec = parse_order(body(orderType="sniper", tokenIn="USDC", tokenOut="SOL", amount="300", maxPrice="150",
                            slippageBps=300), NOW)
    assert spec.min_out == 2_000_000_000 and spec.time_in_force is None
    without_cap = parse_order(body(orderType="sniper", tokenIn="USDC", tokenOut="SOL", amount="300", slippageBps=300), NOW)
    assert without_cap.min_out is None
    with pytest.raises(ApiError) as caught:
        parse_order(body(orderType="sniper", tokenIn="USDC", tokenOut="SOL", amount="300"), NOW)
    assert caught.value.field == "slippageBps"
