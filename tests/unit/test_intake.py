import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.errors import ApiError
from services.gateway.intake import parse_order
from services.gateway.terms import MAX_EXPIRY_MS


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


# Families of hostile input: each is refused with a 400 naming the field, never another error.


def gtd(expires_at):
    return body(orderType="limit", limitPrice=150, timeInForce="GTD", expiresAt=expires_at)


@pytest.mark.parametrize("raw,field", [
    (b"[" * 100_000, "body"), (b'{"a": "\xff"}', "body"), (b'{"amount": NaN}', "body"), (b'{"amount": 1e400}', "body"),
    (b'{"amount": ' + b"9" * 5000 + b"}", "body"), (b"\xef\xbb\xbf{}", "body"), (b'"\\ud800"', "body"),
    (body(amount="\u0661"), "amount"), (body(orderType="limit", limitPrice="\u0661\u0665\u0660"), "limitPrice"),
    (body(orderType="limit", limitPrice="1_000"), "limitPrice"), (body(orderType="limit", limitPrice=" 1e3 "), "limitPrice"),
    (body(clientOrderId="key\n"), "clientOrderId"), (body(clientOrderId="\u0661"), "clientOrderId"),
    (gtd(NOW + MAX_EXPIRY_MS + 1), "expiresAt"), (gtd(2**63 - 1), "expiresAt"), (gtd(-(2**63)), "expiresAt"),
    (gtd("9999-12-31T23:59:59-23:59"), "expiresAt"), (gtd("0001-01-01T00:00:00+23:59"), "expiresAt"),
    (gtd("\uff12\uff10\uff12\uff16-06-01T00:00:00Z"), "expiresAt"), (gtd("2026-06-01T00:00:00"), "expiresAt"),
    (gtd(1.8e12), "expiresAt"), (gtd(True), "expiresAt"),
])
def test_hostile_values_of_every_family_are_refused_naming_the_field(raw, field):
    with pytest.raises(ApiError) as caught:
        parse_order(raw, NOW)
    assert caught.value.status == 400 and caught.value.field == field and len(caught.value.detail) < 300


def test_an_expiry_up_to_the_longest_resting_time_ahead_is_accepted_exactly():
    assert parse_order(gtd(NOW + MAX_EXPIRY_MS), NOW).expires_at == NOW + MAX_EXPIRY_MS
    assert parse_order(gtd("2026-01-01T00:00:00.0015Z"), NOW).expires_at == NOW + 1  # truncated, never rounded up


def test_errors_quote_at_most_a_few_dozen_characters_of_what_was_sent():
    for raw in (body(tokenIn="X" * 10_000), body(amount="1" * 10_000), body(orderType="o" * 10_000),
                body(**{"k" * 10_000: 1}), body(slippageBps=-(10**4000))):
        with pytest.raises(ApiError) as caught:
            parse_order(raw, NOW)
        assert len(caught.value.detail) < 300 and len(caught.value.field) <= 66


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["SOL", "USDC", "BONK", "1.5", "0", "-1", "GTD", "limit", "sniper", "2026-06-01T00:00:00Z"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = ["orderType", "tokenIn", "tokenOut", "amount", "slippageBps", "clientOrderId", "limitPrice", "timeInForce",
          "expiresAt", "maxPrice"]


def _accepted_or_refused(raw: bytes) -> None:
    try:
        spec = parse_order(raw, NOW)
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.detail and len(exc.detail) < 600
    else:
        assert spec.amount_in > 0 and spec.token_in != spec.token_out


@settings(derandomize=True, max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_an_order_or_a_4xx(raw):
    _accepted_or_refused(raw)


@settings(derandomize=True, max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), JSON_VALUES, max_size=8))
def test_any_json_object_gives_an_order_or_a_4xx(fields):
    _accepted_or_refused(json.dumps(fields).encode())
