import msgspec

from services.executor import policy
from services.executor.build import BuildParams, Wallet, build, memo, priority_fee_lamports, priority_price
from shared import events as ev
from shared.chain import Blockhash, draw_key
from shared.orders import fold
from tests.kit import HAPPY, history, make

MAX = 3


def test_a_routed_order_is_built_as_attempt_one():
    state = fold(history(*HAPPY[:3]))
    assert policy.next_step(state, 0, max_attempts=MAX) == policy.Build(1)


def test_a_built_but_unrecorded_send_is_looked_up_before_sending():
    state = fold(history(*HAPPY[:4]))
    step = policy.next_step(state, 0, max_attempts=MAX)
    assert isinstance(step, policy.Send) and step.tx.signature == "sig1"


def test_a_submitted_transaction_is_awaited():
    state = fold(history(*HAPPY[:5]))
    assert isinstance(policy.next_step(state, 0, max_attempts=MAX), policy.AwaitLanding)


def test_a_failed_attempt_waits_for_its_backoff_then_builds_the_next():
    events = history(*HAPPY[:5], ev.AttemptFailed)
    state = fold(events)
    retry_at = events[-1].retry_at
    assert policy.next_step(state, retry_at - 1, max_attempts=MAX) == policy.Wait(retry_at)
    assert policy.next_step(state, retry_at, max_attempts=MAX) == policy.Build(2)


def test_after_the_last_attempt_fails_the_order_gives_up_with_the_last_error():
    state = msgspec.structs.replace(fold(history(*HAPPY[:5], ev.AttemptFailed)), attempts=MAX)
    step = policy.next_step(state, 10**13, max_attempts=MAX)
    assert isinstance(step, policy.GiveUp) and "3 attempts" in step.reason and "dropped" in step.reason


def test_terminal_and_unrouted_orders_need_nothing():
    assert policy.next_step(fold(history(*HAPPY)), 0, max_attempts=MAX) == policy.Done()
    assert policy.next_step(fold(history(*HAPPY[:2])), 0, max_attempts=MAX) == policy.Done()
    assert policy.next_step(None, 0, max_attempts=MAX) == policy.Done()


def test_backoff_doubles_and_is_capped():
    assert [policy.backoff_ms(a, base_ms=100, max_ms=350) for a in (1, 2, 3, 4)] == [100, 200, 350, 350]


WALLET = Wallet.from_seed("unit")
PARAMS = BuildParams(compute_unit_limit=200_000, compute_unit_price=50_000)
BH = Blockhash(value="11111111111111111111111111111111", slot=10, last_valid_slot=35)


def test_building_is_deterministic_so_a_recorded_transaction_can_be_rebuilt_exactly():
    state = fold(history(*HAPPY[:3]))
    first = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
    again = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
    other = build(state, attempt=1, blockhash=msgspec.structs.replace(BH, slot=11), wallet=WALLET, params=PARAMS)
    assert first.signature == again.signature != other.signature


def test_selling_native_sol_wraps_it_and_the_swap_carries_the_minimum_output():
    state = fold(history(*HAPPY[:3]))
    tx = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
    names = [i.name for i in tx.message.instructions]
    assert names == ["SetComputeUnitLimit", "SetComputeUnitPrice", "CreateIdempotent", "Transfer", "SyncNative",
                     "swap_base_input", "CloseAccount", "Memo"]
    assert tx.message.swap.min_amount_out == state.route.min_out
    assert priority_fee_lamports(tx) == 200_000 * 50_000 // 1_000_000


def test_buying_native_sol_unwraps_it_and_a_token_swap_touches_no_sol_account():
    usdc_sol = msgspec.structs.replace(make(ev.OrderAccepted).order, token_in="USDC", token_out="SOL")
    state = fold([make(ev.OrderAccepted, order=usdc_sol), *history(*HAPPY[:3])[1:]])
    names = [i.name for i in build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS).message.instructions]
    assert "CloseAccount" in names and "SyncNative" not in names
    bonk_usdc = msgspec.structs.replace(usdc_sol, token_in="BONK", token_out="USDC")
    state = fold([make(ev.OrderAccepted, order=bonk_usdc), *history(*HAPPY[:3])[1:]])
    names = [i.name for i in build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS).message.instructions]
    assert names == ["SetComputeUnitLimit", "SetComputeUnitPrice", "swap_base_input", "Memo"]


def test_the_same_swap_for_two_orders_in_one_slot_is_two_transactions():
    first = fold(history(*HAPPY[:3], order_id="a"))
    second = fold(history(*HAPPY[:3], order_id="b"))
    assert build(first, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS).signature != build(
        second, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS).signature


def test_the_chain_draws_an_attempts_fate_from_the_order_and_attempt_its_memo_names_not_its_blockhash():
    state = fold(history(*HAPPY[:3], order_id="o7"))
    later = msgspec.structs.replace(BH, slot=30, last_valid_slot=55)
    keys = {(attempt, draw_key(build(state, attempt=attempt, blockhash=blockhash, wallet=WALLET, params=PARAMS)))
            for attempt in (1, 2) for blockhash in (BH, later)}
    assert keys == {(1, memo("o7", 1)), (2, memo("o7", 2))} and memo("o7", 1) != memo("o7", 2)


def test_each_retry_pays_a_higher_priority_fee():
    assert [priority_price(1000, a) for a in (1, 2, 3)] == [1000, 1500, 2250]
