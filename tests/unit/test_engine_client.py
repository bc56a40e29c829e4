"""The engine client's wire format, its retries, and the `engine` CLI's parsing and output, without sockets."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import uuid
from decimal import Decimal

import httpx
import msgspec
import pytest

from engine_client import ApiError, EngineClient, LimitOrder, MarketOrder, OrderView, SniperOrder, Submitted
from engine_client import cli, render, types
from services.gateway import models
from engine_client.types import Event, OrderPage

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def order_json(**fields) -> dict:
    """An order view as the gateway answers it (every key present, amounts as decimal strings)."""
    return {
        "orderId": "o-1", "clientOrderId": "c-1", "orderType": "market", "status": "confirmed", "progress": 100,
        "tokenIn": "SOL", "tokenOut": "USDC", "amountIn": "1.5", "slippageBps": 50, "venue": "raydium-cpmm",
        "poolId": "p", "expectedOut": "216.626727", "minOut": "215.543593", "fee": "0.00375", "priceImpactBps": 1,
        "quotes": [{"venue": "raydium-cpmm", "poolId": "p", "amountIn": "1.5", "amountOut": "216.626727",
                    "fee": "0.00375", "priceImpactBps": 1, "fillable": True}],
        "routeKind": "direct", "gainBps": None, "paths": [], "candidates": [], "limitPrice": None,
        "timeInForce": None, "expiresAt": None, "floorOut": None, "amountOut": "216.410317",
        "executedPrice": "144.273544", "txSignature": "4qE7", "slot": 70050541, "attempts": 1, "lastError": None,
        "failureCode": None, "failureReason": None, "createdAt": "2026-12-01T12:00:00.000Z",
        "updatedAt": "2026-12-01T12:00:01.000Z", "lastSeq": 6, "aFieldFromANewerServer": 1, **fields,
    }


def event_json(seq: int, status: str, progress: int) -> dict:
    return {"type": status, "orderId": "o-1", "seq": seq, "status": status, "event": "E", "eventId": f"e{seq}",
            "message": f"step {seq}", "progress": progress, "timestamp": "2026-12-01T12:00:00.123Z", "data": {}}


# --- Wire format ---------------------------------------------------------------------------


def _wire(cls: type) -> dict[str, bool]:
    """A Struct's fields as the wire names them, each with whether it is required."""
    return {f.encode_name: f.required for f in msgspec.structs.fields(cls)}


@pytest.mark.parametrize("client_type, server_type", [
    (types.Quote, models.QuoteView), (types.Leg, models.LegView), (types.Path, models.PathView),
    (types.OrderView, models.OrderView), (types.Submitted, models.Submitted), (types.Cancelled, models.Cancelled),
    (types.OrderPage, models.OrderPage), (types.Event, models.StreamMessage),
    (types.EventHistory, models.EventHistory), (types.VenueQuote, models.VenueQuote),
    (types.PairQuotes, models.PairQuotes), (types.ErrorBody, models.ErrorBody),
], ids=lambda t: t.__name__)
def test_the_client_expects_only_fields_the_gateway_sends_and_requires_only_those_it_always_sends(
    client_type, server_type,
):
    client, server = _wire(client_type), _wire(server_type)
    assert set(client) <= set(server)
    assert {name for name, required in client.items() if required} <= {n for n, r in server.items() if r}



def test_each_order_type_is_sent_with_its_tag_decimal_strings_and_only_the_fields_set():
    bodies = [msgspec.json.decode(msgspec.json.encode(order)) for order in (
        MarketOrder(token_in="SOL", token_out="USDC", amount=Decimal("1.50")),
        LimitOrder(token_in="SOL", token_out="USDC", amount=Decimal("1"), limit_price=Decimal("150.5"),
                   time_in_force="GTD", expires_at=NOW),
        SniperOrder(token_in="USDC", token_out="PUMP", amount=Decimal("25"), slippage_bps=300,
                    max_price=Decimal("0.0025"), client_order_id="snipe-1"),
    )]
    assert bodies == [
        {"orderType": "market", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.50"},
        {"orderType": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1", "limitPrice": "150.5",
         "timeInForce": "GTD", "expiresAt": "2026-12-01T12:00:00Z"},
        {"orderType": "sniper", "tokenIn": "USDC", "tokenOut": "PUMP", "amount": "25", "slippageBps": 300,
         "maxPrice": "0.0025", "clientOrderId": "snipe-1"},
    ]


def test_an_order_view_decodes_amounts_as_decimals_and_ignores_fields_it_does_not_know():
    view = msgspec.json.decode(json.dumps(order_json()), type=OrderView)
    assert (view.amount_in, view.amount_out, view.quotes[0].amount_out, view.limit_price) == (
        Decimal("1.5"), Decimal("216.410317"), Decimal("216.626727"), None)


# --- Retries ---------------------------------------------------------------------------------


def client_of(answers: list, seen: list[httpx.Request]) -> EngineClient:
    """A client whose server answers `answers` in turn (an exception is raised as a transport failure)."""
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    http = httpx.AsyncClient(base_url="http://gateway", transport=httpx.MockTransport(handle))
    return EngineClient(http=http, backoff=0)


async def test_a_submission_retried_after_a_503_and_a_lost_connection_sends_the_same_client_order_id():
    seen: list[httpx.Request] = []
    answers = [httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "not_accepted", "detail": "d"}),
               httpx.ConnectError("refused"),
               httpx.Response(200, json={**order_json(status="pending"), "wsUrl": "ws://x", "statusUrl": "/x",
                                         "created": False})]
    answer = await client_of(answers, seen).submit(MarketOrder(token_in="SOL", token_out="USDC", amount=Decimal("1.5")))
    bodies = [json.loads(r.content) for r in seen]
    assert isinstance(answer, Submitted) and len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    assert uuid.UUID(bodies[0]["clientOrderId"]).version == 4


async def test_a_refusal_is_not_retried_and_raises_with_the_field():
    seen: list[httpx.Request] = []
    refusal = httpx.Response(400, json={"error": "invalid_field", "detail": "amount has 10 decimal places",
                                        "field": "amount"})
    with pytest.raises(ApiError) as raised:
        await client_of([refusal], seen).get("o-1")
    assert (len(seen), raised.value.status, raised.value.code, raised.value.field) == (1, 400, "invalid_field", "amount")


async def test_an_order_id_stays_one_path_segment_whatever_it_holds():
    seen: list[httpx.Request] = []
    gone = httpx.Response(404, json={"error": "order_not_found", "detail": "no order", "field": "orderId"})
    with pytest.raises(ApiError):
        await client_of([gone], seen).cancel("../quotes?pair=SOL-USDC")
    assert seen[0].url.raw_path == b"/api/orders/%2E%2E%2Fquotes%3Fpair%3DSOL-USDC"


# --- CLI -------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return cli.parser().parse_args(list(argv))


def test_a_limit_command_line_becomes_a_gtd_limit_order():
    args = parse("submit", "limit", "SOL", "USDC", "1", "--limit-price", "150.5", "--tif", "GTD",
                 "--expires-at", "2026-12-01T12:10:00Z", "--client-order-id", "mine")
    assert cli.order_of(args) == LimitOrder(token_in="SOL", token_out="USDC", amount=Decimal("1"),
                                            limit_price=Decimal("150.5"), time_in_force="GTD",
                                            expires_at=NOW + dt.timedelta(minutes=10), client_order_id="mine")


@pytest.mark.parametrize("argv", [
    ["--url", "http://gw", "--key", "k", "--json", "list"],
    ["list", "--url", "http://gw", "--key", "k", "--json"],
    ["--url", "http://gw", "list", "--key", "k", "--json"],
])
def test_the_connection_options_go_before_or_after_the_command(argv):
    args = cli.parser().parse_args(argv)
    assert (args.command, args.url, args.key, args.json) == ("list", "http://gw", "k", True)


def test_a_sniper_command_line_needs_its_slippage():
    with pytest.raises(SystemExit) as refused:
        parse("submit", "sniper", "USDC", "PUMP", "25", "--max-price", "0.0025")
    assert refused.value.code == cli.EXIT_USAGE


@pytest.mark.parametrize("text", ["abc", "NaN", "Infinity"])
def test_an_amount_that_is_no_finite_decimal_is_a_usage_error(text):
    with pytest.raises(SystemExit) as refused:
        parse("submit", "market", "SOL", "USDC", text)
    assert refused.value.code == cli.EXIT_USAGE


def test_an_expiry_is_relative_epoch_milliseconds_or_a_zoned_time():
    assert [cli.expiry("+10m", NOW), cli.expiry("1764590400000"), cli.expiry("2026-12-01T12:00:00+00:00")] == [
        NOW + dt.timedelta(minutes=10), 1764590400000, NOW]


def test_an_expiry_without_a_zone_is_refused():
    with pytest.raises(argparse.ArgumentTypeError):
        cli.expiry("2026-12-01T12:00:00")


def test_a_timeline_line_shows_the_bar_the_seq_the_time_and_the_message():
    event = msgspec.convert(event_json(3, "building", 55), Event)
    assert render.event(event) == "[###########.........]  55%  #3   12:00:00.123  building   E: step 3"


def test_a_page_lists_each_order_and_how_to_get_the_next():
    page = OrderPage(orders=[msgspec.convert(order_json(), OrderView)], next_cursor="c2")
    lines = render.page(page).splitlines()
    assert lines[1].split() == ["o-1", "market", "confirmed", "1.5", "SOL", "->", "USDC", "216.410317",
                                "2026-12-01T12:00:00.000Z"]
    assert lines[-1] == "more: engine list --cursor c2"


async def test_watch_as_json_prints_one_line_an_event_and_exits_1_when_the_order_did_not_confirm():
    class Events(EngineClient):
        async def watch(self, order_id, *, after_seq=0):
            for seq, status, progress in ((1, "pending", 10), (2, "open", 20), (3, "cancelled", 100)):
                yield msgspec.convert(event_json(seq, status, progress), Event)

    out = io.StringIO()
    code = await cli.run(parse("watch", "o-1", "--json"), Events("http://gateway"), out=out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (code, [m["seq"] for m in lines], lines[-1]["status"]) == (cli.EXIT_NOT_CONFIRMED, [1, 2, 3], "cancelled")


async def test_watch_on_a_terminal_keeps_one_bar_under_the_timeline_and_redraws_it_in_place():
    class Events(EngineClient):
        async def watch(self, order_id, *, after_seq=0):
            for seq, status, progress in ((1, "pending", 10), (2, "confirmed", 100)):
                yield msgspec.convert(event_json(seq, status, progress), Event)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    assert await cli.run(parse("watch", "o-1"), Events("http://gateway"), out=out) == cli.EXIT_OK
    assert out.getvalue() == (
        "\r\033[K#1   12:00:00.123  pending    E: step 1\n[##..................]  10%  pending ..."
        "\r\033[K#2   12:00:00.123  confirmed  E: step 2\n[####################] 100%  confirmed\n"
    )

