from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest

from services.executor.settle import settler
from shared.chain import SwapIntent
from shared.market.config import DEFAULT_CONFIG
from shared.market.cpmm import CpmmPool
from shared.market.dlmm import DlmmPool
from shared.market.fixed_point import SCALE_OFFSET, get_price_from_id
from shared.market.launches import (
    DlmmParams,
    LaunchConflict,
    LaunchError,
    PoolLaunch,
    decode_launch,
    encode_launch,
    new_launch,
)
from shared.market.model import Market, UnknownPool
from shared.market.pools import VENUE_CPMM, VENUE_DLMM
from shared.market.quotes import execute_on_pool
from shared.market.schedule import ScheduleError, parse_schedule
from shared.market.tokens import get_token

LAUNCH_SLOT = 5_000
PUMP = new_launch("PUMP-USDC", listed_at_slot=LAUNCH_SLOT, price="0.002", depth="50000", venues="both")
MEW = new_launch("MEW-SOL", listed_at_slot=LAUNCH_SLOT + 300)
POPCAT = new_launch("POPCAT-SOL", listed_at_slot=LAUNCH_SLOT - 100, venues="meteora-dlmm")


def encoded(pools):
    return msgspec.json.encode(sorted(pools.items()))


# the new tokens


@pytest.mark.parametrize(("symbol", "decimals"), [("PUMP", 6), ("MEW", 5), ("POPCAT", 9)])
def test_the_launch_tokens_are_known_with_their_decimals_and_simulated_mints(symbol, decimals):
    token = get_token(symbol.lower())
    assert (token.symbol, token.decimals, token.native) == (symbol, decimals, False)
    assert token.mint.startswith("Sim") and get_token(token.mint) is token


@pytest.mark.parametrize("symbol", ["PUMP", "MEW", "POPCAT"])
def test_the_launch_tokens_have_no_pool_at_genesis(symbol):
    market = Market(seed=42)
    assert all(symbol not in (pair.base, pair.quote) for pair in market.pairs())
    assert market.quotes(symbol, "SOL", 10**5, 10**9) == ()


# the launch message


def test_a_launch_travels_as_camel_case_json_and_back():
    data = encode_launch(PUMP)
    fields = msgspec.json.decode(data)
    assert fields["listedAtSlot"] == LAUNCH_SLOT and fields["venues"] == [VENUE_CPMM, VENUE_DLMM]
    assert fields["dlmm"]["binStep"] == DlmmParams().bin_step and fields["price"] == "0.002"
    assert decode_launch(data) == PUMP


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"base": "DOGE"}, "unknown token 'DOGE'"),
        ({"base": "pump"}, "canonical symbol 'PUMP'"),
        ({"quote": "PUMP"}, "two different tokens"),
        ({"price": "0"}, "greater than zero"),
        ({"price": "1e-3"}, "plain decimal"),
        ({"price": 0.002}, "Expected `str`, got `float`"),
        ({"price": "0.0000000000000000000000001"}, "too small to represent"),
        ({"depth": "-5"}, "plain decimal"),
        ({"depth": "0.0000001"}, "at most 6"),
        ({"depth": "0.00007"}, "too small to spread over the bins"),
        ({"venues": []}, "venues must be"),
        ({"venues": ["uniswap"]}, "venues must be"),
        ({"venues": [VENUE_CPMM, VENUE_CPMM]}, "venues must be"),
        ({"venues": [VENUE_CPMM], "dlmm": {"binStep": 10}}, "meteora-dlmm is not among"),
        ({"dlmm": {"binStep": 0}}, "binStep must be 1-400"),
        ({"listedAtSlot": -1}, "non-negative"),
        ({"volatilityPct": 0}, "volatilityPct"),
    ],
)
def test_a_malformed_launch_is_refused_with_a_reason(change, complaint):
    fields = msgspec.json.decode(encode_launch(PUMP)) | change
    with pytest.raises(LaunchError, match=complaint):
        decode_launch(msgspec.json.encode(fields))


def test_a_launch_without_price_or_depth_takes_them_from_reference_values():
    launch = new_launch("mew-sol", listed_at_slot=1)
    assert (launch.pair_id, launch.venues, launch.dlmm) == ("MEW-SOL", (VENUE_CPMM,), None)
    assert Fraction(launch.price) == Fraction("0.003") / 150
    assert launch.depth == "333.333"  # $50,000 of SOL at $150, six significant digits


def test_a_launch_on_meteora_writes_its_dlmm_parameters_out_in_full():
    launch = new_launch("POPCAT-USDC", listed_at_slot=1, venues="meteora", dlmm=DlmmParams(bin_step=80))
    assert launch.venues == (VENUE_DLMM,) and launch.dlmm == DlmmParams(bin_step=80)
    assert msgspec.json.decode(encode_launch(launch))["dlmm"]["baseFactor"] == DlmmParams().base_factor


# the schedule


def test_a_schedule_turns_relative_times_into_slots_after_now():
    launches = parse_schedule("PUMP-USDC@+60s:0.002:50000,MEW-SOL@+120s", now_slot=1_000, slot_ms=400)
    pump, mew = launches
    assert (pump.pair_id, pump.listed_at_slot, pump.price, pump.depth) == ("PUMP-USDC", 1_150, "0.002", "50000")
    assert (mew.pair_id, mew.listed_at_slot, mew.venues) == ("MEW-SOL", 1_300, (VENUE_CPMM,))
    assert mew.price == new_launch("MEW-SOL", listed_at_slot=0).price


@pytest.mark.parametrize(
    ("when", "slot"),
    [("now", 70), ("+1ms", 71), ("+400ms", 71), ("+401ms", 72), ("+1.5s", 74), ("+2m", 370), ("+1h", 9_070),
     ("+25slots", 95), ("+1slot", 71), ("123456", 123_456)],
)
def test_a_schedule_time_rounds_up_to_a_whole_slot(when, slot):
    (launch,) = parse_schedule(f"PUMP-USDC@{when}", now_slot=70, slot_ms=400)
    assert launch.listed_at_slot == slot


def test_a_schedule_item_may_name_its_venues_and_skip_fields():
    text = " popcat-sol@+10s::1000:raydium/meteora , PUMP-SOL@+20s:0.00001::dlmm "
    popcat, pump = parse_schedule(text, now_slot=0, slot_ms=400)
    assert (popcat.pair_id, popcat.depth, popcat.venues) == ("POPCAT-SOL", "1000", (VENUE_CPMM, VENUE_DLMM))
    assert (pump.price, pump.venues, pump.dlmm) == ("0.00001", (VENUE_DLMM,), DlmmParams())


def test_an_empty_schedule_launches_nothing():
    assert parse_schedule("  ", now_slot=5, slot_ms=400) == ()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("PUMP-USDC", r"item 1 \('PUMP-USDC'\): missing '@WHEN'"),
        ("PUMP-USDC@soon", "item 1 .*time 'soon' is not one of"),
        ("PUMP-USDC@+10", "time '\\+10' is not one of"),
        ("PUMP-USDC@+1.5slots", "whole"),
        ("PUMP-USDC@+1s,", "item 2 .*empty item"),
        ("PUMP@+1s", "must be BASE-QUOTE"),
        ("PUMP-DOGE@+1s", "unknown token 'DOGE'"),
        ("SOL-USDC@+1s", "SOL-USDC has pools from genesis"),
        ("USDC-SOL@+1s", "SOL-USDC has pools from genesis"),
        ("PUMP-USDC@+1s,usdc-pump@+2s", "item 2 .*PUMP-USDC is already scheduled"),
        ("PUMP-USDC@+1s:cheap", "price 'cheap' must be a plain decimal"),
        ("PUMP-USDC@+1s:0.1:100:uniswap", "unknown venue 'uniswap'"),
        ("PUMP-USDC@+1s:0.1:100:both:extra", "too many ':' fields"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_item_and_the_problem(text, complaint):
    with pytest.raises(ScheduleError, match=complaint):
        parse_schedule(text, now_slot=0, slot_ms=400)


# the market learns launches


def test_a_launched_pair_has_no_pools_before_its_slot_and_pools_from_it():
    market = Market(seed=42)
    assert market.add_launch(PUMP) is True
    before, at = LAUNCH_SLOT - 1, LAUNCH_SLOT
    assert market.pools_for("PUMP", "USDC", before) == () and market.quotes("USDC", "PUMP", 10**6, before) == ()
    assert not any("PUMP" in pool_id for pool_id in market.pools_at(before))
    with pytest.raises(UnknownPool, match=f"not listed until slot {LAUNCH_SLOT}"):
        market.pool("raydium-cpmm:PUMP-USDC", before)
    assert {"raydium-cpmm:PUMP-USDC", "meteora-dlmm:PUMP-USDC"} <= set(market.pools_at(at))
    assert [type(pool) for pool in market.pools_for("usdc", "pump", at)] == [CpmmPool, DlmmPool]
    assert market.pool("meteora-dlmm:PUMP-USDC", at + 1_000).bin_step == DlmmParams().bin_step


def test_a_launched_pair_starts_at_its_launch_price():
    market = Market(seed=42, launches=[PUMP])
    assert market.reference_price("PUMP-USDC", LAUNCH_SLOT) == "0.002"
    later = Decimal(market.reference_price("PUMP-USDC", LAUNCH_SLOT + 2_000))
    assert later != Decimal("0.002") and abs(later / Decimal("0.002") - 1) < Decimal("0.2")


@pytest.mark.parametrize("venue", [VENUE_CPMM, VENUE_DLMM])
def test_a_launched_pool_quotes_near_its_launch_price(venue):
    market = Market(seed=42, launches=[PUMP])
    buy = next(q for q in market.quotes("USDC", "PUMP", 100 * 10**6, LAUNCH_SLOT) if q.venue == venue)
    sell = next(q for q in market.quotes("PUMP", "USDC", 50_000 * 10**6, LAUNCH_SLOT) if q.venue == venue)
    assert buy.fillable and sell.fillable
    assert 49_500 * 10**6 < buy.amount_out < 50_000 * 10**6  # 100 USDC at 0.002, less fees and impact
    assert 99 * 10**6 < sell.amount_out < 100 * 10**6


def test_each_launched_pool_holds_about_its_depth_in_quote_value():
    market = Market(seed=42, launches=[PUMP])
    depth = 50_000 * 10**6
    cpmm = market.pool("raydium-cpmm:PUMP-USDC", LAUNCH_SLOT)
    assert abs(cpmm.reserve_b - depth) < depth // 100  # the quote reserve, up to the venue's drift
    dlmm = market.pool("meteora-dlmm:PUMP-USDC", LAUNCH_SLOT)
    value = sum(item.reserve_y + (item.reserve_x * get_price_from_id(item.bin_id, dlmm.bin_step) >> SCALE_OFFSET)
                for item in dlmm.bins)
    assert abs(value - depth) < depth // 20  # spread over the bins, each jittered by up to 20 %


def test_settlement_on_a_launched_pool_matches_its_quote_and_fails_before_the_launch():
    market = Market(seed=7, launches=[MEW])
    slot = MEW.listed_at_slot + 10
    quote = market.quotes("SOL", "MEW", 10**9, slot)[0]
    settle = settler(market)
    intent = SwapIntent(pool_id=quote.pool_id, token_in="SOL", token_out="MEW", amount_in=10**9, min_amount_out=0)
    landed = settle(intent, slot)
    assert landed.ok and landed.amount_out == quote.amount_out
    assert execute_on_pool(market.pool(quote.pool_id, slot), "SOL", 10**9, quote.amount_out).ok
    early = settle(intent, MEW.listed_at_slot - 1)
    assert not early.ok and "does not exist" in early.error


def test_two_markets_that_know_the_same_launches_list_the_same_pools():
    first = Market(seed=42, launches=[PUMP, MEW, POPCAT])
    second = Market(seed=42)
    for launch in (POPCAT, PUMP, MEW):
        second.add_launch(launch)
    for slot in (LAUNCH_SLOT - 200, LAUNCH_SLOT, LAUNCH_SLOT + 300, LAUNCH_SLOT + 10_000):
        assert list(first.pools_at(slot)) == list(second.pools_at(slot))
        assert encoded(first.pools_at(slot)) == encoded(second.pools_at(slot))
    assert first.launches() == second.launches() == (POPCAT, PUMP, MEW)


def test_a_launch_does_not_move_the_pairs_listed_at_genesis():
    plain, launched = Market(seed=42), Market(seed=42, launches=[PUMP, MEW])
    genesis = {pool_id for pool_id in plain.pools_at(LAUNCH_SLOT + 500)}
    assert {k: v for k, v in launched.pools_at(LAUNCH_SLOT + 500).items() if k in genesis} == plain.pools_at(
        LAUNCH_SLOT + 500
    )


def test_learning_the_same_launch_twice_changes_nothing():
    market = Market(seed=42, launches=[PUMP])
    assert market.add_launch(PUMP) is False
    assert market.launches() == (PUMP,)


@pytest.mark.parametrize(
    ("launch", "complaint"),
    [
        (new_launch("PUMP-USDC", listed_at_slot=LAUNCH_SLOT, price="0.003"), "PUMP-USDC is already listed from a diff"),
        (new_launch("USDC-PUMP", listed_at_slot=LAUNCH_SLOT), "PUMP-USDC is already listed"),
        (new_launch("USDC-SOL", listed_at_slot=1), "SOL-USDC is already listed from genesis"),
    ],
)
def test_a_second_launch_of_a_listed_pair_is_a_conflict(launch, complaint):
    market = Market(seed=42, launches=[PUMP])
    with pytest.raises(LaunchConflict, match=complaint):
        market.add_launch(launch)
    assert market.launches() == (PUMP,) and len(market.pairs()) == len(DEFAULT_CONFIG.pairs) + 1


def test_a_launch_for_a_past_slot_lists_its_pools_from_that_slot():
    market = Market(seed=1)
    launch = PoolLaunch(base="POPCAT", quote="USDT", price="0.4", depth="1000", listed_at_slot=0)
    market.add_launch(launch)
    assert set(market.pools_at(0)) >= {"raydium-cpmm:POPCAT-USDT"}
