from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.amounts import MAX_BASE_UNITS, AmountError, format_amount, format_price, parse_amount


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        ("1.5", 9, 1_500_000_000),
        ("1", 9, 1_000_000_000),
        (2, 6, 2_000_000),
        ("0.000000001", 9, 1),
        ("1.50", 6, 1_500_000),
        ("1.5000000000", 6, 1_500_000),
        (".5", 6, 500_000),
        ("7.", 6, 7_000_000),
        (" 2.25 ", 6, 2_250_000),
        ("123", 0, 123),
        ("00012.5", 5, 1_250_000),
        (1.5, 9, 1_500_000_000),
        (0.1, 6, 100_000),
        (1e-7, 9, 100),
        (3.0, 6, 3_000_000),
        (str(MAX_BASE_UNITS), 0, MAX_BASE_UNITS),
        ("18446744073.709551615", 9, MAX_BASE_UNITS),
    ],
)
def test_parse_amount_converts_token_units_to_exact_base_units(value, decimals, expected):
    assert parse_amount(value, decimals) == expected


@pytest.mark.parametrize(
    ("value", "decimals", "message"),
    [
        ("abc", 9, "is not a decimal number"),
        ("1.2.3", 9, "is not a decimal number"),
        ("+1", 9, "is not a decimal number"),
        ("1_000", 9, "is not a decimal number"),
        ("0x10", 9, "is not a decimal number"),
        ("\u0661", 9, "is not a decimal number"),
        (".", 9, "is not a decimal number"),
        ("", 9, "amount is empty"),
        ("   ", 9, "amount is empty"),
        ("NaN", 9, "finite number"),
        ("nan", 9, "finite number"),
        ("Infinity", 9, "finite number"),
        ("-inf", 9, "finite number"),
        (float("nan"), 9, "finite number"),
        (float("inf"), 9, "finite number"),
        (float("-inf"), 9, "finite number"),
        ("-1", 9, "must not be negative"),
        ("-0", 9, "must not be negative"),
        (-1, 9, "must not be negative"),
        (-0.5, 9, "must not be negative"),
        ("0", 9, "greater than zero"),
        ("0.000", 9, "greater than zero"),
        (0, 9, "greater than zero"),
        (0.0, 9, "greater than zero"),
        (-0.0, 9, "greater than zero"),
        ("1.0000000001", 9, "10 decimal places; this token allows at most 9"),
        ("0.0000001", 6, "7 decimal places; this token allows at most 6"),
        ("1.5", 0, "1 decimal place; this token allows at most 0"),
        (0.1 + 0.2, 9, "decimal places"),
        ("1e9", 9, "exponent notation"),
        ("1E-3", 9, "exponent notation"),
        ("2.5e+3", 9, "exponent notation"),
        (".5e1000000", 9, "exponent notation"),
        (str(MAX_BASE_UNITS + 1), 0, "too large"),
        ("18446744073.709551616", 9, "too large"),
        (10**30, 9, "too large"),
        (10**4000, 9, "too large"),
        (1e30, 9, "too large"),
        (1e300, 9, "too large"),
        ("1" * 65, 0, "too long"),
        (True, 9, "not a boolean"),
        (None, 9, "must be a number or a decimal string, not NoneType"),
        ([1], 9, "must be a number or a decimal string, not list"),
        (Decimal("1"), 9, "must be a number or a decimal string, not Decimal"),
    ],
)
def test_every_bad_amount_raises_amount_error_with_a_clear_message(value, decimals, message):
    with pytest.raises(AmountError, match=message.replace(".", r"\.").replace("+", r"\+")):
        parse_amount(value, decimals)


def test_amount_error_is_a_value_error():
    assert issubclass(AmountError, ValueError)


def test_parse_amount_refuses_nonsense_token_decimals():
    with pytest.raises(ValueError, match="decimals"):
        parse_amount("1", -1)


@pytest.mark.parametrize(
    ("base_units", "decimals", "expected"),
    [
        (1_500_000_000, 9, "1.5"),
        (0, 9, "0"),
        (1, 9, "0.000000001"),
        (1_000_000_000, 9, "1"),
        (10_000_000, 6, "10"),
        (123, 0, "123"),
        (1_234_567, 5, "12.34567"),
        (-2_500_000, 6, "-2.5"),
        (MAX_BASE_UNITS, 9, "18446744073.709551615"),
    ],
)
def test_format_amount_is_canonical_with_no_trailing_zeros(base_units, decimals, expected):
    assert format_amount(base_units, decimals) == expected


def test_format_amount_refuses_a_float():
    with pytest.raises(TypeError):
        format_amount(1.5, 9)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=MAX_BASE_UNITS), st.integers(min_value=0, max_value=18))
def test_format_then_parse_round_trips_every_amount(base_units, decimals):
    text = format_amount(base_units, decimals)
    assert parse_amount(text, decimals) == base_units
    assert not text.endswith(".") and not ("." in text and text.endswith("0"))


@given(st.floats(), st.integers(min_value=0, max_value=12))
def test_a_float_is_accepted_only_when_its_repr_is_exact_in_the_token(value, decimals):
    try:
        parsed = parse_amount(value, decimals)
    except AmountError:
        return
    assert Decimal(parsed) == Decimal(repr(value)) * 10**decimals


@given(st.integers(min_value=1, max_value=10**10), st.integers(min_value=0, max_value=9))
def test_a_json_number_with_few_digits_parses_like_its_decimal_string(units, places):
    written = Decimal(units).scaleb(-places)
    as_float = float(written)  # what a JSON parser hands over for that literal
    assert parse_amount(as_float, 9) == parse_amount(format(written, "f"), 9) == units * 10 ** (9 - places)


@pytest.mark.parametrize(
    ("num", "den", "digits", "expected"),
    [
        (1, 3, 10, "0.3333333333"),
        (2, 3, 4, "0.6667"),
        (150, 1, 10, "150"),
        (135, 10**9, 10, "0.000000135"),
        (0, 5, 10, "0"),
        (10**20, 3, 5, "33333000000000000000"),
        (-1, 8, 10, "-0.125"),
        (1475276147935, 10**10, 6, "147.528"),
    ],
)
def test_format_price_rounds_a_ratio_to_fixed_significant_digits(num, den, digits, expected):
    assert format_price(num, den, digits) == expected


def test_format_price_refuses_a_zero_denominator():
    with pytest.raises(ValueError, match="denominator"):
        format_price(1, 0)


@given(st.integers(min_value=1, max_value=2**128), st.integers(min_value=1, max_value=2**128))
def test_format_price_is_within_half_a_unit_in_the_last_digit(num, den):
    shown = Decimal(format_price(num, den, 10))
    exact = Decimal(num) / Decimal(den)
    assert abs(shown - exact) <= exact * Decimal("5e-10")
