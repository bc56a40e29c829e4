"""The fault suite's verdict finds each broken promise, from made-up runs (no servers)."""

from __future__ import annotations

import msgspec

from shared import events as ev
from tests.faults.ledger import ChainTx, LogOrder, seq_gaps
from tests.faults.load import Attempt, Intent
from tests.faults.verdict import Figures, judge, resume_after
from tests.kit import HAPPY, SPEC, make

T0 = 1_000.0  # seconds: the load starts
FAULT = T0 + 10


def order(order_id: str, amount: int, sent: float, took: float, classes=HAPPY) -> LogOrder:
    """An order of `classes`, accepted at `sent`, its last event `took` seconds later."""
    start = int(sent * 1000)
    step = int(took * 1000) // max(1, len(classes) - 1)
    events = [make(ev.OrderAccepted, order_id, seq=1, at=start, order=msgspec.structs.replace(SPEC, amount_in=amount))]
    events += [make(cls, order_id, seq=i, at=start + step * (i - 1)) for i, cls in enumerate(classes[1:], start=2)]
    return LogOrder(events=events)


def intent(index: int, amount: int, sent: float, *answers: tuple[int | None, str | None]) -> Intent:
    made = Intent(index=index, token_in="SOL", token_out="USDC", client_order_id=f"c{index}")
    for status, order_id in answers:
        made.attempts.append(Attempt(gateway="g", amount_in=amount, sent=sent, answered=sent, status=status,
                                     order_id=order_id))
    return made


class Run:
    """Six orders finished before the fault (normal time 0.5 s), then what a test adds."""

    def __init__(self) -> None:
        self.intents: list[Intent] = []
        self.log: dict[str, LogOrder] = {}
        self.chain: dict[str, list[ChainTx]] = {}
        for i in range(6):
            self.add(f"b{i}", T0 + i, took=0.5)

    def add(self, order_id: str, sent: float, took: float, *, classes=HAPPY, status: int = 202) -> None:
        amount = 1_000_000_000 + len(self.intents)
        self.intents.append(intent(len(self.intents), amount, sent, (status, order_id if status < 300 else None)))
        self.log[order_id] = order(order_id, amount, sent, took, classes)
        if classes[-1] is ev.OrderConfirmed:
            self.chain[order_id] = [ChainTx("sig1", order_id, 1, "confirmed")]

    def figures(self, outages=()) -> Figures:
        figures = Figures(scenario="made up", orders=len(self.intents), rate=1, faults=[])
        judge(figures, self.intents, self.log, self.chain, first_fault=FAULT, outages=list(outages), now=T0 + 100)
        figures.seq_gaps = seq_gaps(self.log)
        return figures


def test_a_run_that_keeps_every_promise_has_no_problems():
    run = Run()
    run.add("a", FAULT + 1, took=2.0)
    figures = run.figures()
    assert figures.problems(stall_limit=5) == []
    assert figures.normal_s == 0.5
    assert round(figures.longest_stall_s, 2) == 1.5


def test_two_landed_transactions_of_one_order_are_an_execution_twice():
    run = Run()
    run.add("a", FAULT + 1, took=1.0)
    run.chain["a"].append(ChainTx("sig2", "a", 2, "failed"))  # landed, even if its swap failed
    assert run.figures().executed_twice == ["a: 2 transactions landed, attempts [1, 2]"]


def test_an_execution_the_log_does_not_know_is_a_disagreement_with_the_chain():
    run = Run()
    run.add("a", FAULT + 1, took=1.0, classes=(ev.OrderAccepted, ev.RoutingStarted, ev.OrderFailed))
    run.chain["a"] = [ChainTx("sig9", "a", 1, "confirmed")]
    assert run.figures().chain_disagrees == ["a: 1 confirmed on chain, the log says failed"]


def test_an_order_answered_5xx_then_executed_breaks_the_promise():
    run = Run()
    run.add("a", FAULT + 1, took=1.0, status=503)
    figures = run.figures()
    assert figures.executed_after_5xx == ["a (answered 503)"]
    assert figures.http_5xx == 1


def test_a_5xx_is_forgiven_when_a_retry_with_the_same_key_was_accepted():
    run = Run()
    run.add("a", FAULT + 1, took=1.0)
    run.intents[-1].attempts.insert(0, Attempt(gateway="g", amount_in=run.intents[-1].attempts[0].amount_in,
                                               sent=FAULT + 1, status=503))
    figures = run.figures()
    assert figures.executed_after_5xx == [] and figures.http_5xx == 1


def test_an_accepted_order_that_never_finishes_is_lost_and_stalls_until_now():
    run = Run()
    run.add("a", FAULT + 1, took=1.0, classes=(ev.OrderAccepted, ev.RoutingStarted, ev.OrderRouted))
    figures = run.figures()
    assert figures.lost == ["a: building"] and figures.unfinished == ["a"]
    assert figures.stalled_order == "a" and round(figures.longest_stall_s, 2) == round(100 - 11 - 0.5, 2)
    assert any("stalled 88.50 s beyond its normal 0.50 s (limit 5 s)" in p for p in figures.problems(stall_limit=5))


def test_a_broker_outage_does_not_count_as_a_stall():
    run = Run()
    run.add("a", FAULT + 1, took=8.0)
    assert round(run.figures().longest_stall_s, 2) == 7.5
    assert round(run.figures(outages=[(FAULT + 2, FAULT + 6)]).longest_stall_s, 2) == 3.5


def test_a_gap_in_seq_is_found():
    run = Run()
    run.add("a", FAULT + 1, took=1.0)
    del run.log["a"].events[2]
    assert run.figures().seq_gaps == ["a: seq [1, 2, 4, 5, 6]"]


def test_an_order_in_the_log_that_no_request_made_is_untraced():
    run = Run()
    run.log["stray"] = order("stray", 7, FAULT, 1.0)
    assert run.figures().untraced == ["stray"]


def test_resume_is_measured_per_role_from_the_broker_coming_back():
    run = Run()
    run.add("a", FAULT + 1, took=5.0)  # its events 1 s apart, from FAULT + 1
    assert resume_after(run.log, FAULT + 1.5) == {"gateway": None, "router": 0.5, "executor": 2.5}
