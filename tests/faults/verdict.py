"""The figures of one fault run and the promises they are held to.

Promises: nothing lost (every order answered 2xx reaches a terminal state), nothing executed
twice (the chain's ledger), seq gapless, read model equal to the log, no 5xx for an order
that was then executed, no order in the log left unfinished, and no order stalled more than
`stall_limit` seconds beyond its normal time (the 95th percentile of the orders finished
before the first fault), not counting time the broker (or every replica of a service) was
away; after a broker outage every role appends again within `resume_limit` seconds of the
broker being back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from shared import events as ev
from tests.faults.ledger import ChainTx, LogOrder
from tests.faults.load import Intent

#: The first event each role appends when it takes work up.
ROLE_EVENTS = {
    "gateway": (ev.OrderAccepted,),
    "router": (ev.RoutingStarted,),
    "executor": (ev.TransactionBuilt,),
}


#: The lists of `Figures` that must be empty.
PROMISES = (
    "lost",
    "executed_twice",
    "executed_after_5xx",
    "chain_disagrees",
    "unfinished",
    "untraced",
    "misanswered",
    "seq_gaps",
    "read_model",
)


@dataclass
class Figures:
    scenario: str
    orders: int
    rate: float
    faults: list[str]
    lost: list[str] = field(default_factory=list)
    executed_twice: list[str] = field(default_factory=list)
    executed_after_5xx: list[str] = field(default_factory=list)
    chain_disagrees: list[str] = field(default_factory=list)  # the chain's ledger and the log differ
    unfinished: list[str] = field(default_factory=list)
    untraced: list[str] = field(default_factory=list)  # orders in the log no request of the run made
    misanswered: list[str] = field(default_factory=list)  # a 2xx naming another order than the request made
    seq_gaps: list[str] = field(default_factory=list)
    read_model: list[str] = field(default_factory=list)
    http_5xx: int = 0
    no_answer: int = 0
    accepted: int = 0
    confirmed: int = 0
    normal_s: float = 0.0
    longest_stall_s: float = 0.0
    stalled_order: str = ""
    stalled_steps: str = ""  # the stalled order's events, seconds after its first request
    consumers: dict[str, str] = field(default_factory=dict)  # what each durable still held at the end
    logs: str = ""  # where the services' logs of the run are
    load_average: float = 0.0  # of the machine (1 min) when the run ended: context for the timings
    resume_s: float | None = None  # the slowest role's
    resume_by_role: dict[str, float | None] = field(default_factory=dict)
    read_model_caught_up_s: float | None = None

    def line(self) -> str:
        resume = f", resumed after the broker was back (s): {self.resume_by_role}" if self.resume_by_role else ""
        return (
            f"{self.scenario}: {self.orders} orders at {self.rate:g}/s ({self.accepted} accepted, "
            f"{self.confirmed} confirmed); {'; '.join(self.faults) or 'no fault'}; lost {len(self.lost)}, "
            f"executed twice {len(self.executed_twice)}, executed after a 5xx {len(self.executed_after_5xx)}, "
            f"unfinished {len(self.unfinished)}, seq gaps {len(self.seq_gaps)}, read model diffs "
            f"{len(self.read_model)}; longest stall {self.longest_stall_s:.2f} s beyond normal "
            f"{self.normal_s:.2f} s{resume}; 5xx {self.http_5xx}, unanswered {self.no_answer}; "
            f"load average {self.load_average:.1f}"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def problems(self, *, stall_limit: float, resume_limit: float | None = None) -> list[str]:
        """Each broken promise with the figure measured (empty: all kept)."""
        out = []
        for name in PROMISES:
            found = getattr(self, name)
            if found:
                out.append(f"{name.replace('_', ' ')}: {len(found)}, e.g. {found[:3]}")
        if out:
            out.append(f"consumers at the end: {self.consumers}; service logs in {self.logs}")
        if self.longest_stall_s > stall_limit:
            out.append(
                f"order {self.stalled_order} stalled {self.longest_stall_s:.2f} s beyond its normal "
                f"{self.normal_s:.2f} s (limit {stall_limit:g} s): {self.stalled_steps}"
            )
        if resume_limit is not None and (self.resume_s is None or self.resume_s > resume_limit):
            out.append(
                f"processing resumed {self.resume_by_role} s after the broker was back (limit {resume_limit:g} s)"
            )
        return out


def judge(
    figures: Figures,
    intents: list[Intent],
    log: dict[str, LogOrder],
    chain: dict[str, list[ChainTx]],
    *,
    first_fault: float,
    outages: list[tuple[float, float]],
    now: float,
) -> None:
    """Fill `figures` from what the client saw and what the log and the chain hold."""
    by_amount = {
        (first.order.token_in, first.order.amount_in): oid
        for oid, o in log.items()
        if isinstance(first := o.events[0], ev.OrderAccepted)  # another first event is a seq gap
    }
    traced: set[str] = set()
    figures.http_5xx = sum(1 for i in intents for a in i.attempts if a.status is not None and a.status >= 500)
    figures.no_answer = sum(1 for i in intents for a in i.attempts if a.status is None)
    for intent in intents:
        accepted = intent.accepted
        won = accepted.order_id if accepted else None
        for attempt in intent.attempts:
            order_id = by_amount.get((intent.token_in, attempt.amount_in))
            if order_id is None:
                continue
            traced.add(order_id)
            if attempt.status is not None and 200 <= attempt.status < 300 and attempt.order_id != order_id:
                figures.misanswered.append(f"answered {attempt.order_id}, the request created {order_id}")
            if attempt.status is not None and attempt.status >= 500 and order_id != won:
                if any(tx.landed for tx in chain.get(order_id, [])):
                    figures.executed_after_5xx.append(f"{order_id} (answered {attempt.status})")
        if accepted is None:
            continue
        figures.accepted += 1
        order = log.get(won or "")
        state = order.state if order else None
        if state is None or not state.terminal:
            figures.lost.append(f"{won}: {state.status if state else 'not in the log'}")
    figures.untraced = sorted(log.keys() - traced)
    figures.unfinished = sorted(oid for oid, o in log.items() if not (o.state and o.state.terminal))
    for order_id, order in log.items():
        state = order.state
        txs = chain.get(order_id, [])
        landed = [tx for tx in txs if tx.landed]
        confirmed = [tx for tx in txs if tx.state == "confirmed"]
        expected = 1 if state is not None and state.status == "confirmed" else 0
        if len(landed) > 1:
            attempts = [tx.attempt for tx in landed]
            figures.executed_twice.append(f"{order_id}: {len(landed)} transactions landed, attempts {attempts}")
        if len(confirmed) != expected:
            figures.chain_disagrees.append(
                f"{order_id}: {len(confirmed)} confirmed on chain, the log says {state and state.status}"
            )
        elif expected and confirmed[0].signature != state.signature:
            figures.chain_disagrees.append(
                f"{order_id}: chain confirmed {confirmed[0].signature}, the log {state.signature}"
            )
        figures.confirmed += expected
    _stalls(figures, intents, log, first_fault=first_fault, outages=outages, now=now)


def _stalls(
    figures: Figures,
    intents: list[Intent],
    log: dict[str, LogOrder],
    *,
    first_fault: float,
    outages: list[tuple[float, float]],
    now: float,
) -> None:
    started = min((i.first_sent for i in intents), default=now)
    spans: list[tuple[Intent, str, float, float]] = []  # intent, order, sent, finished (or now)
    for intent in intents:
        accepted = intent.accepted
        if accepted is None or accepted.order_id not in log:
            continue
        order = log[accepted.order_id]
        state = order.state
        finished = state.updated_at / 1000 if state and state.terminal else now
        spans.append((intent, accepted.order_id, intent.first_sent, finished))
    baseline = sorted(end - start for _, _, start, end in spans if end < first_fault)
    assert len(baseline) >= 5, f"only {len(baseline)} orders finished before the first fault: no normal time to compare"
    figures.normal_s = baseline[min(len(baseline) - 1, math.ceil(0.95 * len(baseline)) - 1)]
    for intent, order_id, start, end in spans:
        away = sum(max(0.0, min(end, back) - max(start, down)) for down, back in outages)
        stall = end - start - figures.normal_s - away
        if stall > figures.longest_stall_s:
            figures.longest_stall_s, figures.stalled_order = stall, order_id
            steps = [f"{type(e).__name__} +{e.occurred_at / 1000 - start:.2f}" for e in log[order_id].events]
            first = intent.first_sent - started
            asked = [
                f"{a.status or a.error.split(':')[0] or 'none yet'} +{(a.answered or now) - start:.2f}"
                for a in intent.attempts
            ]
            figures.stalled_steps = (
                f"first sent {first:.1f} s into the load; answers {', '.join(asked)}; events {', '.join(steps)}"
            )


def resume_after(log: dict[str, LogOrder], back: float) -> dict[str, float | None]:
    """Seconds from `back` until each role (gateway, router, executor) appended again (None: never)."""
    delays: dict[str, float | None] = {}
    for role, types in ROLE_EVENTS.items():
        after = [e.occurred_at / 1000 for o in log.values() for e in o.events if isinstance(e, types)]
        after = [t for t in after if t >= back]
        delays[role] = round(min(after) - back, 2) if after else None
    return delays
