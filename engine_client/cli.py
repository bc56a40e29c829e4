"""`engine`: submit, watch, list, get and cancel orders, follow quotes and manage API keys.

    engine submit market SOL USDC 1.5 [--slippage-bps 50] [--client-order-id ID]
    engine submit limit SOL USDC 1 --limit-price 150.5 [--tif GTC|GTD|IOC] [--expires-at +10m]
    engine submit sniper USDC PUMP 25 --slippage-bps 300 [--max-price 0.0025] [--expires-at ...]
    engine watch ID [--after-seq N]      engine get ID      engine events ID      engine cancel ID
    engine list [--status S] [--limit N] [--cursor C]     engine quotes PAIR [--follow]
    engine keys create|list|revoke ...   (python -m tools.keys)

The gateway is `--url`, else `GATEWAY_URL`, else the running `make run`'s; the key is
`--key`, else `API_KEY`, else `.run/api-key`. `--json` prints one JSON document (JSON lines
for `watch` and `quotes --follow`) and errors as JSON on stderr.

Exit status: 0 done (`watch`: the order confirmed); 1 the watched order ended otherwise
(failed, cancelled, expired); 2 bad usage, or no gateway or key known; 3 the API refused the
request (a 4xx: its code and field are printed); 4 the gateway could not be reached or
answered 5xx, after retries.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import sys
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import httpx
import msgspec
import websockets

from engine_client import render
from engine_client.client import EngineClient
from engine_client.types import ApiError, LimitOrder, MarketOrder, Order, SniperOrder
from tools import local

EXIT_OK, EXIT_NOT_CONFIRMED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4
_RELATIVE = re.compile(r"\+(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def expiry(text: str, now: dt.datetime | None = None) -> dt.datetime | int:
    """`+10m` (s, m, h, d from now), epoch milliseconds, or an ISO-8601 time with a zone."""
    if text.isdigit():
        return int(text)
    if relative := _RELATIVE.fullmatch(text):
        now = now or dt.datetime.now(dt.timezone.utc)
        return now + dt.timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not +10m, epoch milliseconds or an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, such as a trailing Z for UTC")
    return moment


def _connection_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--url", default=default, help="the gateway (default: GATEWAY_URL, else the running `make run`)")
    parser.add_argument("--key", default=default, help="the API key (default: API_KEY, else .run/api-key)")
    parser.add_argument("--json", action="store_true", default=default or False,
                        help="JSON for scripts (JSON lines when following)")


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="engine", description=__doc__.splitlines()[0].removeprefix("`engine`: "),
                                  epilog="Exit status: " + __doc__.split("Exit status: ")[1])
    # Before the command (`engine --json list`) or after it (`engine list --json`): after it,
    # an option left out does not undo one given before.
    _connection_options(cli, None)
    common = argparse.ArgumentParser(add_help=False)
    _connection_options(common, argparse.SUPPRESS)
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", help="submit an order").add_subparsers(dest="order_type", required=True)
    for order_type, text in (("market", "routed and executed at once"), ("limit", "rests until the price reaches a limit"),
                             ("sniper", "buys a token as soon as its pool launches")):
        sub = submit.add_parser(order_type, parents=[common], help=text)
        sub.add_argument("token_in", metavar="TOKEN_IN")
        sub.add_argument("token_out", metavar="TOKEN_OUT")
        sub.add_argument("amount", type=decimal, metavar="AMOUNT", help="in TOKEN_IN units")
        sub.add_argument("--slippage-bps", type=int, required=order_type == "sniper")
        sub.add_argument("--client-order-id", help="idempotency key (default: a new uuid4)")
        if order_type == "limit":
            sub.add_argument("--limit-price", type=decimal, required=True, help="least TOKEN_OUT per TOKEN_IN")
            sub.add_argument("--tif", choices=("GTC", "GTD", "IOC"), help="time in force (default GTC)")
        if order_type == "sniper":
            sub.add_argument("--max-price", type=decimal, help="most TOKEN_IN per TOKEN_OUT")
        if order_type != "market":
            sub.add_argument("--expires-at", type=expiry, help="+10m, epoch ms or ISO-8601 (GTD and sniper)")

    watch = commands.add_parser("watch", parents=[common], help="follow an order's events to its end")
    watch.add_argument("order_id")
    watch.add_argument("--after-seq", type=int, default=0, help="only events after this seq")
    for name, text in (("get", "show an order"), ("events", "an order's event history"), ("cancel", "cancel an order")):
        commands.add_parser(name, parents=[common], help=text).add_argument("order_id")
    listing = commands.add_parser("list", parents=[common], help="your orders, newest first")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int)
    listing.add_argument("--cursor", help="the `more:` cursor of the previous page")
    quotes = commands.add_parser("quotes", parents=[common], help="the latest quote of each venue for a pair")
    quotes.add_argument("pair", metavar="PAIR", help="e.g. SOL-USDC")
    quotes.add_argument("--follow", action="store_true", help="keep printing new quotes")
    commands.add_parser("keys", help="create, list, revoke API keys (engine keys --help)", add_help=False)
    return cli


def order_of(args: argparse.Namespace) -> Order:
    """The typed order a `submit` command line describes."""
    common: dict[str, Any] = dict(token_in=args.token_in, token_out=args.token_out, amount=args.amount,
                                  client_order_id=args.client_order_id, slippage_bps=args.slippage_bps)
    if args.order_type == "limit":
        return LimitOrder(**common, limit_price=args.limit_price, time_in_force=args.tif, expires_at=args.expires_at)
    if args.order_type == "sniper":
        return SniperOrder(**common, max_price=args.max_price, expires_at=args.expires_at)
    return MarketOrder(**common)


def as_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def run(args: argparse.Namespace, engine: EngineClient, out=sys.stdout) -> int:
    """Carry out one parsed command line; the exit status."""
    def show(value: Any, text: str) -> None:
        print(as_json(value) if args.json else text, file=out, flush=True)

    if args.command == "submit":
        answer = await engine.submit(order_of(args))
        show(answer, render.submitted(answer))
    elif args.command == "watch":
        last = None
        live = not args.json and out.isatty()  # a terminal: one bar under the timeline, redrawn in place
        async for event in engine.watch(args.order_id, after_seq=args.after_seq):
            if live:
                print(f"\r\033[K{render.event(event, bar=False)}\n{render.standing(event)}", end="", file=out, flush=True)
            else:
                show(event, render.event(event))
            last = event
        if live:
            print(file=out)
        return EXIT_OK if last is None or last.status == "confirmed" else EXIT_NOT_CONFIRMED
    elif args.command == "get":
        answer = await engine.get(args.order_id)
        show(answer, render.order(answer))
    elif args.command == "events":
        history = await engine.events(args.order_id)
        show(history, "\n".join(render.event(e) for e in history))
    elif args.command == "cancel":
        answer = await engine.cancel(args.order_id)
        show(answer, render.cancelled(answer))
    elif args.command == "list":
        answer = await engine.list(status=args.status, limit=args.limit, cursor=args.cursor)
        show(answer, render.page(answer))
    elif args.follow:
        async for quote in engine.follow_quotes(args.pair):
            show(quote, render.quote(quote))
    else:
        answer = await engine.quotes(args.pair)
        show(answer, render.quotes(answer))
    return EXIT_OK


def fail(args: argparse.Namespace, status: int, error: str, detail: str, field: str | None = None) -> int:
    """Say what went wrong on stderr (as JSON under --json); the exit status for it."""
    if args.json:
        print(as_json({"error": error, "detail": detail, "field": field, "status": status}), file=sys.stderr)
    else:
        where = f" (field: {field})" if field else ""
        print(f"error: {error}{where}: {detail}" + (f" [HTTP {status}]" if status else ""), file=sys.stderr)
    return EXIT_REFUSED if 400 <= status < 500 else EXIT_UNAVAILABLE


async def _main(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("GATEWAY_URL") or local.running_stack().gateway_url
    async with EngineClient(url, args.key or local.api_key()) as engine:
        try:
            return await run(args, engine)
        except ApiError as exc:
            return fail(args, exc.status, exc.code, exc.message, exc.field)
        except (httpx.TransportError, OSError, TimeoutError, websockets.WebSocketException) as exc:
            return fail(args, 0, "unreachable", f"{url}: {exc or type(exc).__name__}")


def main(argv: list[str] | None = None) -> NoReturn:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        from tools import keys  # its own command line, as documented for `python -m tools.keys`

        keys.main(argv[1:])
    args = parser().parse_args(argv)
    try:
        sys.exit(asyncio.run(_main(args)))
    except local.NoLocalStack as exc:
        print(f"error: {exc}; or give --url and --key", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)
