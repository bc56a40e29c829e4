import json

import pytest

from services.gateway.errors import ApiError
from services.gateway.intake import parse_order


def body(**fields):
    return json.dumps({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", **fields}).encode()


def test_a_market_order_is_normalised_to_base_units_and_known_symbols():
    spec = parse_order(body(tokenIn="sol", amount=1.5))
    assert (spec.token_in, spec.token_out, spec.amount_in, spec.slippage_bps, spec.order_type) == (
        "SOL", "USDC", 1_500_000_000, 50, "market")


def test_the_same_order_written_differently_has_the_same_request_hash():
    assert parse_order(body(amount="1.50")).request_hash == parse_order(body(amount=1.5, tokenIn="Sol")).request_hash
    assert parse_order(body(amount="1.5")).request_hash != parse_order(body(amount="1.6")).request_hash


@pytest.mark.parametrize("raw,field", [
    (b"{", "body"), (b"null", "body"), (body(tokenIn="XYZ"), "tokenIn"), (body(tokenOut="SOL"), "tokenOut"),
    (body(amount="0"), "amount"), (body(amount=None), "amount"), (body(amount=[1]), "amount"),
    (body(slippageBps=5001), "slippageBps"), (body(slippageBps=True), "slippageBps"),
    (body(orderType="limit"), "orderType"), (body(extra=1), "extra"), (body(clientOrderId=""), "clientOrderId"),
])
def test_bad_fields_are_named(raw, field):
    with pytest.raises(ApiError) as caught:
        parse_order(raw)
    assert caught.value.status == 400 and caught.value.field == field and caught.value.detail
