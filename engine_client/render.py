"""How the `engine` CLI shows answers to a person: plain text, one fact a line, and a progress bar.

Every function takes a typed answer and returns text, so what a person reads is tested
without a terminal. `--json` bypasses all of this (see `cli.as_json`).
"""

from __future__ import annotations

from decimal import Decimal

from engine_client.types import Cancelled, Event, OrderPage, OrderView, PairQuotes, Submitted, VenueQuote

BAR_WIDTH = 20

#: The order fields worth a line in `engine get`, in the order a trader reads them.
_DETAILS = (
    ("status", "status"), ("order_type", "type"), ("time_in_force", "time in force"), ("limit_price", "limit price"),
    ("expires_at", "expires at"), ("venue", "venue"), ("route_kind", "route"), ("expected_out", "expected out"),
    ("min_out", "minimum out"), ("amount_out", "received"), ("executed_price", "executed price"),
    ("price_impact_bps", "price impact bps"), ("tx_signature", "transaction"), ("slot", "slot"),
    ("attempts", "attempts"), ("last_error", "last error"), ("failure_code", "failure code"),
    ("failure_reason", "failure reason"), ("client_order_id", "clientOrderId"), ("created_at", "created"),
    ("updated_at", "updated"), ("last_seq", "last seq"),
)


def amount(value: Decimal | None) -> str:
    """A decimal as the API wrote it, without an exponent (`1E+1` reads as 10)."""
    return "-" if value is None else format(value, "f")


def progress_bar(progress: int) -> str:
    filled = max(0, min(BAR_WIDTH, progress * BAR_WIDTH // 100))
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + f"] {progress:3d}%"


def swap(order: OrderView) -> str:
    return f"{amount(order.amount_in)} {order.token_in} -> {order.token_out}"


def submitted(order: Submitted) -> str:
    verb = "accepted" if order.created else "already accepted (same clientOrderId)"
    return (f"{verb}: {order.order_id}  {order.order_type} {swap(order)}  status {order.status}\n"
            f"clientOrderId {order.client_order_id}\nwatch it: engine watch {order.order_id}")


def order(view: OrderView) -> str:
    lines = [f"order {view.order_id}  {swap(view)}", f"  {'progress':<17}{progress_bar(view.progress)}"]
    for name, label in _DETAILS:
        value = getattr(view, name)
        if value is None or value == "":
            continue
        lines.append(f"  {label:<17}{amount(value) if isinstance(value, Decimal) else value}")
    for quote in view.quotes:
        lines.append(f"  {'quote':<17}{quote.venue}: {amount(quote.amount_out)} {view.token_out}"
                     f" (impact {quote.price_impact_bps} bps{'' if quote.fillable else ', cannot fill'})")
    return "\n".join(lines)


def cancelled(view: Cancelled) -> str:
    return f"{view.order_id} {'cancelled' if view.cancelled else 'was already cancelled'} (status {view.status})"


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def page(result: OrderPage) -> str:
    if not result.orders:
        return "no orders"
    rows = [("ORDER ID", "TYPE", "STATUS", "SWAP", "OUT", "CREATED")] + [
        (o.order_id, o.order_type, o.status, swap(o), amount(o.amount_out or o.expected_out), o.created_at)
        for o in result.orders
    ]
    more = f"\nmore: engine list --cursor {result.next_cursor}" if result.next_cursor else ""
    return table(rows) + more


def event(item: Event, *, bar: bool = True) -> str:
    """One line of an order's timeline: the bar where the order stands (unless `bar` is False), then what happened."""
    time = item.timestamp[11:23] if len(item.timestamp) >= 23 else item.timestamp
    line = f"#{item.seq:<3} {time}  {item.status:<9}  {item.event}: {item.message}"
    return f"{progress_bar(item.progress)}  {line}" if bar else line


def standing(item: Event) -> str:
    """Where the order stands after `item`: the live bar a terminal shows under the timeline."""
    return f"{progress_bar(item.progress)}  {item.status}" + ("" if item.terminal else " ...")


def quote(item: VenueQuote) -> str:
    price = f"  spot {amount(item.spot_price)}" if item.spot_price is not None else ""
    return (f"slot {item.slot}  {item.venue:<13} {amount(item.amount_in)} {item.token_in} -> "
            f"{amount(item.amount_out)} {item.token_out}  impact {item.price_impact_bps} bps{price}")


def quotes(result: PairQuotes) -> str:
    return "\n".join([f"quotes for {result.pair}"] + [quote(q) for q in result.quotes])
