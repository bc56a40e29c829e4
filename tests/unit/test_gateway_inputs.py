"""Query parameters, cursors, echoed values and stored times: strict in, total out."""

import base64
import datetime as dt
import json

import msgspec
import pytest

from services.gateway.errors import ApiError, clip
from services.gateway.params import bounded_int
from services.gateway.reads import BadCursor, decode_cursor, encode_cursor
from services.gateway.views import iso, order_view, stream_message
from shared import events as ev
from shared.ids import is_order_id
from shared.orders import apply
from tests.kit import SPEC, make

ORDER_ID = "0190aaaa-0000-7000-8000-000000000000"


def cursor_of(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_this_server_issued_decodes_to_its_position():
    created = dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.timezone.utc)
    assert decode_cursor(encode_cursor(created, ORDER_ID)) == (created, ORDER_ID)


@pytest.mark.parametrize("cursor", [
    "garbage!", "", "x" * 1000, "\u00e9t\u00e9", cursor_of([1, 2]), cursor_of({"a": 1}), cursor_of(["a", "b", "c"]),
    cursor_of(["2026-01-01T00:00:00", ORDER_ID]), cursor_of(["0001-01-01T00:00:00+01:00", ORDER_ID]),
    cursor_of(["9999-12-31T23:59:59-23:59", ORDER_ID]), cursor_of(["1999-12-31T23:59:59+00:00", ORDER_ID]),
    cursor_of(["2026-01-01T00:00:00+00:00", "a\u0000b"]), cursor_of(["2026-01-01T00:00:00+00:00", ORDER_ID + "\n"]),
    cursor_of(["2026-01-01T00:00:00+00:00", "x" * 65]), cursor_of(["\u0662\u0660\u0662\u0666-01-01T00:00:00Z", ORDER_ID]),
])
def test_a_cursor_the_database_could_refuse_is_a_bad_cursor(cursor):
    with pytest.raises(BadCursor):
        decode_cursor(cursor)


@pytest.mark.parametrize("raw", ["\u00b2", "\u0661", "\uff15", "1" * 19, "+5", "-1", " 5", "5\n", "", "0", "101", "1.0"])
def test_a_count_is_a_short_run_of_ascii_digits_within_its_bounds(raw):
    with pytest.raises(ApiError) as caught:
        bounded_int("limit", raw, default=20, low=1, high=100)
    assert caught.value.status == 400 and caught.value.field == "limit"


def test_a_count_in_bounds_is_read_and_an_absent_one_is_the_default():
    assert bounded_int("limit", "007", default=20, low=1, high=100) == 7
    assert bounded_int("limit", None, default=20, low=1, high=100) == 20


@pytest.mark.parametrize("value", [ORDER_ID + "\n", "a" * 65, "", "a.b", "a b", "\u0661", None, 5])
def test_only_a_short_safe_string_can_name_an_order(value):
    assert not is_order_id(value)


def test_clip_bounds_what_an_error_echoes():
    assert clip("abc") == "'abc'"
    assert len(clip("x" * 10_000)) == 64 and clip("x" * 10_000).endswith("…")
    assert clip(10**5000) == "(a number too long to show)"
    assert clip("a\nb") == "'a\\nb'"


@pytest.mark.parametrize("ms", [10**17, -(10**17), 2**63, 253402300800000, -62135596800001])
def test_a_stored_time_no_calendar_holds_renders_as_none_instead_of_failing(ms):
    assert iso(ms) is None


def test_a_stored_time_renders_as_iso_utc_with_milliseconds():
    assert iso(1767225600123) == "2026-01-01T00:00:00.123Z" and iso(None) is None


def test_an_order_stored_with_values_no_view_expects_still_renders():
    odd = msgspec.structs.replace(SPEC, expires_at=10**17, token_in="GONE", min_out=5)
    accepted = make(ev.OrderAccepted, order=odd, at=-(10**17))
    state = apply(None, accepted)
    view = order_view(state)
    assert view.expires_at is None and view.created_at is None and view.amount_in == str(odd.amount_in)
    assert stream_message(accepted, state).timestamp is None
    msgspec.json.encode(view)  # and it serialises


def test_a_routed_message_names_the_route_taken_when_another_candidate_pays_exactly_as_much():
    def path(pool: str, amount_out: int) -> ev.Path:
        leg = ev.Leg(venue=pool, pool_id=pool, token_in="SOL", token_out="USDC", amount_in=5, amount_out=amount_out,
                     fee=1, price_impact_bps=1)
        return ev.Path(amount_in=5, amount_out=amount_out, legs=(leg,))

    taken = (path("a", 70), path("b", 30))
    tie = ev.Candidate(kind="split", description="c 50% + d 50%", amount_out=100, paths=(path("c", 50), path("d", 50)))
    winner = ev.Candidate(kind="split", description="a 50% + b 50%", amount_out=100, paths=taken)
    route = ev.Route(venue="split", pool_id="a+b", amount_in=10, expected_out=100, min_out=99, fee=2,
                     price_impact_bps=1, slot=1, quotes=(), kind="split", paths=taken, candidates=(tie, winner))
    state = apply(apply(None, make(ev.OrderAccepted, order=SPEC)), make(ev.RoutingStarted, seq=2))
    routed = make(ev.OrderRouted, seq=3, route=route)
    message = stream_message(routed, apply(state, routed)).message
    assert "Routed to split a 50% + b 50%" in message
