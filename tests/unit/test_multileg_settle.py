"""Split and multi-hop routes carried to the chain: the transaction, its checks and settlement."""

from __future__ import annotations

import msgspec
import pytest

from services.executor.build import ASSERTION, PROGRAMS, BuildParams, Wallet, build
from services.executor.settle import settler
from services.router.decide import decide
from shared import events as ev
from shared.chain import Blockhash, ChainConfig, InMemoryChainStore, PermanentChainError, SimulatedChain, SlotClock
from shared.chain.transaction import SwapIntent, SwapLeg, SwapPath, check_well_formed, message_bytes, signed
from shared.market.model import Market
from shared.orders import fold
from tests.kit import SPEC, make

MARKET = Market(7)
SETTLE = settler(MARKET)
WALLET = Wallet.from_seed("unit")
PARAMS = BuildParams(compute_unit_limit=400_000, compute_unit_price=50_000)
BH = Blockhash(value="11111111111111111111111111111111", slot=10, last_valid_slot=35)


def routed_events(order_id: str, spec: ev.OrderSpec, route: ev.Route) -> list[ev.OrderEvent]:
    return [
        make(ev.OrderAccepted, order_id, seq=1, order=spec),
        make(ev.RoutingStarted, order_id, seq=2),
        make(ev.OrderRouted, order_id, seq=3, route=route),
    ]


def routed(token_in: str, token_out: str, amount_in: int, slot: int, order_id: str = "o1"):
    spec = msgspec.structs.replace(SPEC, token_in=token_in, token_out=token_out, amount_in=amount_in)
    route = decide(spec, MARKET, slot)
    return fold(routed_events(order_id, spec, route)), route


def intent(*paths: tuple[int, tuple[tuple[str, str, str], ...]], token_in="USDC", token_out="SOL", min_out=0):
    return SwapIntent(
        pool_id="route", token_in=token_in, token_out=token_out, amount_in=sum(a for a, _ in paths),
        min_amount_out=min_out,
        paths=tuple(SwapPath(amount_in=a, legs=tuple(SwapLeg(pool_id=p, token_in=i, token_out=o) for p, i, o in legs))
                    for a, legs in paths),
    )


# --- the swap intent on the wire --------------------------------------------------------------


def test_a_single_pool_swap_encodes_and_signs_exactly_as_before_paths_existed():
    swap = SwapIntent(pool_id="raydium-cpmm:SOL-USDC", token_in="SOL", token_out="USDC", amount_in=5, min_amount_out=4)
    assert msgspec.json.encode(swap, order="deterministic") == (
        b'{"pool_id":"raydium-cpmm:SOL-USDC","token_in":"SOL","token_out":"USDC","amount_in":5,"min_amount_out":4}'
    )
    old = b'{"pool_id":"p","token_in":"SOL","token_out":"USDC","amount_in":5,"min_amount_out":4}'
    assert msgspec.json.decode(old, type=SwapIntent).paths == ()


def test_a_multi_leg_swap_round_trips_through_its_encoding():
    swap = intent((7, (("a", "USDC", "USDT"), ("b", "USDT", "SOL"))), (3, (("c", "USDC", "SOL"),)))
    assert msgspec.json.decode(msgspec.json.encode(swap), type=SwapIntent) == swap


# --- building the transaction -----------------------------------------------------------------


def test_a_split_is_one_swap_per_venue_and_one_check_of_the_total():
    state, route = routed("SOL", "USDC", 50_000 * 10**9, 2_000)
    assert route.kind == "split"
    tx = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
    ixs = tx.message.instructions
    swaps = [ix for ix in ixs if ix.program_id in {p for p, _ in PROGRAMS.values()}]
    assert [ix.args["pool"] for ix in swaps] == [p.legs[0].pool_id for p in route.paths]
    assert [ix.args["amountIn"] for ix in swaps] == [p.amount_in for p in route.paths]
    assert all(ix.args["minimumAmountOut"] == 0 for ix in swaps)
    (check,) = [ix for ix in ixs if ix.program_id == ASSERTION]
    assert check.args["minimumIncrease"] == route.min_out
    names = [ix.name for ix in ixs]
    assert names[:5] == ["SetComputeUnitLimit", "SetComputeUnitPrice", "CreateIdempotent", "Transfer", "SyncNative"]
    assert names[-3:] == ["AssertAccountDelta", "CloseAccount", "Memo"]
    swap = tx.message.swap
    assert swap.pool_id == route.pool_id and swap.min_amount_out == route.min_out
    assert [(p.amount_in, [leg.pool_id for leg in p.legs]) for p in swap.paths] == [
        (p.amount_in, [leg.pool_id for leg in p.legs]) for p in route.paths
    ]
    check_well_formed(tx)


def test_a_two_hop_path_carries_the_floor_on_its_last_leg_only():
    state, route = routed("JUP", "SOL", 1_000 * 10**6, 800)
    tx = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
    names = [ix.name for ix in tx.message.instructions]
    first, second = [ix for ix in tx.message.instructions if ix.name in {"swap", "swap_base_input"}]
    assert first.args == {"pool": "raydium-cpmm:JUP-USDC", "amountIn": 1_000 * 10**6, "minimumAmountOut": 0}
    assert second.args["amountIn"] == "all" and second.args["quotedAmountIn"] == route.paths[0].legs[0].amount_out
    assert second.args["minimumAmountOut"] == route.min_out
    assert "AssertAccountDelta" not in names and "SyncNative" not in names and names[-2:] == ["CloseAccount", "Memo"]


def test_a_direct_route_with_its_path_builds_the_single_pool_transaction():
    state, route = routed("SOL", "USDC", 10**9, 3_000)
    assert route.kind == "direct" and len(route.paths) == 1
    bare = msgspec.structs.replace(route, paths=(), candidates=())
    without_paths = fold(routed_events(state.order_id, state.spec, bare))
    tx = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
    assert tx.message.swap.paths == ()
    assert tx == build(without_paths, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)


# --- what the chain refuses outright ----------------------------------------------------------


def well_formed(swap: SwapIntent) -> None:
    state, _ = routed("SOL", "USDC", 10**9, 3_000)
    tx = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
    check_well_formed(signed(msgspec.structs.replace(tx.message, swap=swap), WALLET.seed))


@pytest.mark.parametrize(
    ("swap", "complaint"),
    [
        (msgspec.structs.replace(intent((5, (("a", "USDC", "SOL"),))), amount_in=6), "sell 5 in all"),
        (intent((5, (("a", "USDC", "USDT"), ("b", "SOL", "USDT")))), "sells SOL into b but holds USDT"),
        (intent((5, (("a", "USDC", "USDT"),))), "ends in USDT, not SOL"),
        (intent((5, (("a", "USDC", "SOL"),)), (5, (("a", "USDC", "SOL"),))), "pool a is swapped through twice"),
        (intent((0, (("a", "USDC", "SOL"),)), (5, (("b", "USDC", "SOL"),))), "path 1 must sell a positive amount"),
        (intent((5, ())), "path 1 has no legs"),
    ],
)
def test_a_malformed_route_is_refused_before_it_can_land(swap, complaint):
    with pytest.raises(PermanentChainError, match=complaint):
        well_formed(swap)


# --- settlement -------------------------------------------------------------------------------


def test_each_kind_of_route_settles_at_its_routing_slot_to_exactly_the_output_it_expected():
    for args in (("SOL", "USDC", 50_000 * 10**9, 2_000), ("JUP", "SOL", 10**9, 800), ("USDC", "SOL", 3 * 10**12, 4_321),
                 ("BONK", "USDT", 10**12, 77)):
        state, route = routed(*args)
        tx = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
        outcome = SETTLE(tx.message.swap, route.slot)
        assert outcome.ok and outcome.amount_out == route.expected_out, (args, route.kind)


def test_a_later_leg_sells_what_the_earlier_one_really_received_at_the_landing_slot():
    swap = intent((10**9, (("raydium-cpmm:JUP-USDC", "JUP", "USDC"), ("raydium-cpmm:SOL-USDC", "USDC", "SOL"))),
                  token_in="JUP")
    landing = 5_000
    first = MARKET.pool("raydium-cpmm:JUP-USDC", landing).swap("JUP", 10**9).amount_out
    second = MARKET.pool("raydium-cpmm:SOL-USDC", landing).swap("USDC", first).amount_out
    assert SETTLE(swap, landing).amount_out == second


def test_the_paths_of_a_split_add_up():
    swap = intent((4 * 10**9, (("raydium-cpmm:SOL-USDC", "USDC", "SOL"),)),
                  (6 * 10**9, (("meteora-dlmm:SOL-USDC", "USDC", "SOL"),)))
    parts = [MARKET.pool(p, 900).swap("USDC", a).amount_out
             for p, a in (("raydium-cpmm:SOL-USDC", 4 * 10**9), ("meteora-dlmm:SOL-USDC", 6 * 10**9))]
    assert SETTLE(swap, 900).amount_out == sum(parts)


def test_a_later_leg_that_runs_out_of_liquidity_fails_the_whole_transaction():
    # $7.5M buys tens of thousands of SOL on the constant-product pool, far more than the WIF bins can take.
    swap = intent(
        (7_500_000 * 10**6, (("raydium-cpmm:SOL-USDC", "USDC", "SOL"), ("meteora-dlmm:WIF-SOL", "SOL", "WIF"))),
        token_out="WIF",
    )
    outcome = SETTLE(swap, 100)
    assert not outcome.ok
    assert outcome.error.startswith("path 1: leg 2 (meteora-dlmm:WIF-SOL): insufficient liquidity: pool can take only")


def test_a_path_through_a_pool_that_is_not_listed_fails_the_whole_transaction():
    swap = intent((10**6, (("raydium-cpmm:SOL-USDC", "USDC", "SOL"),)),
                  (10**6, (("raydium-cpmm:SOL-EUR", "USDC", "SOL"),)))
    outcome = SETTLE(swap, 100)
    assert not outcome.ok
    assert outcome.error == "path 2: leg 1 (raydium-cpmm:SOL-EUR): pool raydium-cpmm:SOL-EUR does not exist at slot 100"


def test_a_leg_naming_tokens_its_pool_does_not_pay_fails():
    outcome = SETTLE(intent((10**6, (("raydium-cpmm:SOL-USDC", "USDC", "USDT"),)), token_out="USDT"), 100)
    assert not outcome.ok
    assert outcome.error == "path 1: leg 1 (raydium-cpmm:SOL-USDC): pool raydium-cpmm:SOL-USDC pays SOL, not USDT"
    wrong_token = intent((10**6, (("raydium-cpmm:JUP-USDC", "USDT", "JUP"),)), token_in="USDT", token_out="JUP")
    outcome = SETTLE(wrong_token, 100)
    assert not outcome.ok and "does not trade USDT" in outcome.error


class FixedTime:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def now_ms(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)


async def test_the_chain_confirms_a_split_with_the_settled_total_and_fails_it_below_the_floor():
    time = FixedTime(400 * 2_000)
    clock = SlotClock(0, 400, time.now_ms)
    config = ChainConfig(seed="unit", confirm_delay_ms=(0, 0), rpc_latency_ms=(0, 0))
    chain = SimulatedChain(InMemoryChainStore(), clock, config, SETTLE, time.sleep)
    for order_id, floor_above_total in (("fits", False), ("short", True)):
        state, route = routed("SOL", "USDC", 50_000 * 10**9, 2_000, order_id=order_id)
        if floor_above_total:
            route = msgspec.structs.replace(route, min_out=route.expected_out + 1)
            state = fold(routed_events(order_id, state.spec, route))
        tx = build(state, attempt=1, blockhash=await chain.latest_blockhash(), wallet=WALLET, params=PARAMS)
        receipt = await chain.submit(tx)
        status = await chain.signature_status(tx.signature)
        assert status is not None and status.slot == receipt.submitted_slot == 2_000
        if floor_above_total:
            assert status.state == "failed" and status.error.startswith("ExceededSlippage")
        else:
            assert status.state == "confirmed" and status.amount_out == route.expected_out


def test_message_bytes_cover_the_paths():
    state, _ = routed("SOL", "USDC", 50_000 * 10**9, 2_000)
    tx = build(state, attempt=1, blockhash=BH, wallet=WALLET, params=PARAMS)
    swap = tx.message.swap
    shifted = msgspec.structs.replace(
        swap, paths=(msgspec.structs.replace(swap.paths[0], amount_in=swap.paths[0].amount_in - 1),
                     msgspec.structs.replace(swap.paths[1], amount_in=swap.paths[1].amount_in + 1)),
    )
    assert message_bytes(tx.message) != message_bytes(msgspec.structs.replace(tx.message, swap=shifted))
