import random
from fractions import Fraction

import msgspec

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.book_side import Side, bound_key, price_key
from services.router.book import LimitBook, RestingOrder
from services.router.book_state import resting_order
from shared import events as ev
from shared.retention import MAX_RESTING_MS

NOW = 1_700_000_000_000


def limit(order_id, min_out, amount_in=1_000, *, token_in="SOL", token_out="USDC", expires_at=None):
    return RestingOrder(order_id=order_id, token_in=token_in, token_out=token_out, amount_in=amount_in,
                        min_out=min_out, expires_at=expires_at, kind="limit")


def sniper(order_id, token_in="SOL", token_out="WIF", *, expires_at=None):
    return RestingOrder(order_id=order_id, token_in=token_in, token_out=token_out, amount_in=10,
                        min_out=1, expires_at=expires_at, kind="sniper")


def ids(orders):
    return [o.order_id for o in orders]


# Price order, insert, cancel, trigger


def test_candidates_are_the_orders_at_or_below_the_price_most_permissive_first():
    book = LimitBook()
    for order_id, min_out in [("c", 1_500), ("a", 1_300), ("d", 1_600), ("b", 1_400)]:
        book.add(limit(order_id, min_out))
    assert ids(book.candidates("SOL", "USDC", 14, 10)) == ["a", "b"]
    assert ids(book.candidates("SOL", "USDC", 1_499, 1_000)) == ["a", "b"]
    assert ids(book.candidates("SOL", "USDC", 3, 2)) == ["a", "b", "c"]
    assert ids(book.candidates("SOL", "USDC", 1, 1)) == []
    assert ids(book.candidates("SOL", "USDC", 2, 1)) == ["a", "b", "c", "d"]


def test_a_limit_price_is_compared_exactly_not_by_its_rounded_value():
    book = LimitBook()
    # 10**30 + 1 over 10**30 rounds to 1.0 as a float but is above 1.
    book.add(limit("just-above-one", 10**30 + 1, 10**30))
    book.add(limit("one", 10**30, 10**30))
    assert ids(book.candidates("SOL", "USDC", 1, 1)) == ["one"]
    assert ids(book.candidates("SOL", "USDC", 10**30 + 1, 10**30)) == ["one", "just-above-one"]


def test_orders_are_ordered_by_price_per_unit_not_by_min_out():
    book = LimitBook()
    book.add(limit("big-order-cheap-limit", min_out=140_000, amount_in=100_000))  # 1.4 per unit
    book.add(limit("small-order-dear-limit", min_out=150, amount_in=100))  # 1.5 per unit
    assert ids(book.candidates("SOL", "USDC", 145, 100)) == ["big-order-cheap-limit"]


def test_equal_limits_keep_arrival_order_even_at_different_sizes():
    book = LimitBook()
    book.add(limit("first", 1_500, 1_000))
    book.add(limit("cheaper", 1_400, 1_000))
    book.add(limit("second", 3_000, 2_000))
    book.add(limit("third", 150, 100))
    assert ids(book.candidates("SOL", "USDC", 3, 2)) == ["cheaper", "first", "second", "third"]


def test_a_cancelled_order_in_the_middle_leaves_its_neighbours_in_order():
    book = LimitBook()
    for i, min_out in enumerate([1_100, 1_200, 1_200, 1_300, 1_400]):
        book.add(limit(f"o{i}", min_out))
    assert book.remove("o2") is True
    assert ids(book.candidates("SOL", "USDC", 2, 1)) == ["o0", "o1", "o3", "o4"]
    assert book.get("o2") is None and "o2" not in book and len(book) == 4


def test_remove_is_idempotent():
    book = LimitBook()
    book.add(limit("a", 1_000))
    assert book.remove("a") is True
    assert book.remove("a") is False
    assert book.remove("never-added") is False
    assert len(book) == 0 and book.sides() == {}


def test_adding_an_order_that_already_rests_changes_nothing():
    book = LimitBook()
    assert book.add(limit("a", 1_000)) is True
    assert book.add(limit("a", 1_000)) is False
    assert len(book) == 1 and ids(book.candidates("SOL", "USDC", 1, 1)) == ["a"]


def test_triggered_orders_leave_the_book_as_the_price_rises():
    book = LimitBook()
    for i in range(10):
        book.add(limit(f"o{i}", 1_000 + 10 * i))
    fired = []
    for price_num in range(1_000, 1_100, 25):
        for order in book.candidates("SOL", "USDC", price_num, 1_000):
            assert book.remove(order.order_id)
            fired.append(order.order_id)
        assert all(o.min_out > price_num for o in book.candidates("SOL", "USDC", 10**9, 1))
    assert fired == [f"o{i}" for i in range(8)]
    assert book.sides() == {("SOL", "USDC"): 2}


def test_a_candidate_stays_in_the_book_until_it_is_removed():
    # Its exact quote may still miss its floor (price impact at its size): asking again finds it.
    book = LimitBook()
    book.add(limit("a", 1_500))
    assert ids(book.candidates("SOL", "USDC", 16, 10)) == ["a"]
    assert ids(book.candidates("SOL", "USDC", 16, 10)) == ["a"]


def test_each_direction_is_its_own_side():
    book = LimitBook()
    book.add(limit("sell-sol", 150, 1, token_in="SOL", token_out="USDC"))
    book.add(limit("buy-sol", 1, 150, token_in="USDC", token_out="SOL"))
    assert ids(book.candidates("SOL", "USDC", 200, 1)) == ["sell-sol"]
    assert ids(book.candidates("USDC", "SOL", 1, 100)) == ["buy-sol"]
    assert book.candidates("SOL", "USDT", 10**9, 1) == []
    assert book.sides() == {("SOL", "USDC"): 1, ("USDC", "SOL"): 1}


def test_a_price_with_no_denominator_is_refused():
    with pytest.raises(ValueError, match="denominator"):
        LimitBook().candidates("SOL", "USDC", 1, 0)


def test_an_order_that_cannot_rest_is_refused():
    with pytest.raises(ValueError, match="amount_in"):
        limit("a", 1, amount_in=0)
    with pytest.raises(ValueError, match="both"):
        limit("a", 1, token_out="SOL")
    with pytest.raises(ValueError, match="min_out"):
        limit("a", -1)


_books = st.lists(
    st.tuples(st.integers(0, 10**12), st.integers(1, 10**12), st.booleans()), min_size=0, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(orders=_books, prices=st.lists(st.tuples(st.integers(0, 10**12), st.integers(1, 10**12)), min_size=1,
                                      max_size=5), cancel_every=st.integers(2, 7))
def test_candidates_match_a_full_scan_of_the_book(orders, prices, cancel_every):
    book = LimitBook(chunk_load=2)  # small chunks, so the book splits and merges them often
    resting = {}
    for i, (min_out, amount_in, reverse) in enumerate(orders):
        token_in, token_out = ("USDC", "SOL") if reverse else ("SOL", "USDC")
        order = limit(f"o{i}", min_out, amount_in, token_in=token_in, token_out=token_out)
        book.add(order)
        resting[order.order_id] = (i, order)
    for i in range(0, len(orders), cancel_every):
        book.remove(f"o{i}")
        del resting[f"o{i}"]
    for num, den in prices:
        for direction in (("SOL", "USDC"), ("USDC", "SOL")):
            expected = sorted(
                ((Fraction(o.min_out, o.amount_in), i, o.order_id) for i, o in resting.values()
                 if (o.token_in, o.token_out) == direction and o.min_out * den <= num * o.amount_in),
            )
            assert ids(book.candidates(*direction, num, den)) == [oid for _, _, oid in expected]


def check_side_against(side, model, num, den):
    model.sort()
    assert side.items() == [item for _, item in model] and len(side) == len(model)
    assert side.up_to(bound_key(num, den)) == [item for key, item in model if key[1] <= Fraction(num, den)]


_prices = st.tuples(st.integers(0, 20), st.integers(1, 5))


@settings(max_examples=150, deadline=None)
@given(first=st.lists(_prices, min_size=10, max_size=150), picks=st.lists(st.integers(0, 10**6), max_size=150),
       then=st.lists(_prices, max_size=40), load=st.integers(2, 8))
def test_a_side_stays_sorted_through_chunk_splits_and_merges(first, picks, then, load):
    side: Side[int] = Side(load)
    model: list[tuple] = []
    for seq, (num, den) in enumerate(first + then):
        if seq == len(first):
            # Delete from anywhere, thinning chunks until they merge.
            for pick in picks:
                if not model:
                    break
                key, _ = model.pop(pick % len(model))
                assert side.delete(key) and not side.delete(key)
                check_side_against(side, model, num, den)
        key = price_key(num, den, seq)
        side.insert(key, seq)
        model.append((key, seq))
        check_side_against(side, model, num, den)


def test_a_side_matches_a_sorted_list_through_a_long_random_history():
    rng = random.Random(11)
    for load in (2, 3, 4, 8):
        side: Side[int] = Side(load)
        model: list[tuple] = []
        for seq in range(1_000):
            num, den = rng.randint(0, 30), rng.randint(1, 6)
            if rng.random() < 0.45 and model:
                key, _ = model.pop(rng.randrange(len(model)))
                assert side.delete(key)
            else:
                key = price_key(num, den, seq)
                side.insert(key, seq)
                model.append((key, seq))
            check_side_against(side, model, num, den)


def test_a_large_side_is_kept_in_bounded_chunks():
    side: Side[int] = Side(8)
    for seq in range(1_000):
        side.insert(price_key(seq * 7919 % 1_000, 1, seq), seq)
    assert side.chunks() >= 1_000 // 16
    for seq in range(0, 1_000, 2):
        assert side.delete(price_key(seq * 7919 % 1_000, 1, seq))
    assert side.items() == sorted(range(1, 1_000, 2), key=lambda s: s * 7919 % 1_000)
    assert side.chunks() <= 500 // 2


# Expiry


def test_due_orders_come_earliest_expiry_first_and_stay_until_removed():
    book = LimitBook()
    book.add(limit("late", 1_000, expires_at=NOW + 3_000))
    book.add(limit("gtc", 1_000))
    book.add(limit("early", 1_000, expires_at=NOW + 1_000))
    book.add(sniper("snipe", expires_at=NOW + 2_000))
    book.add(limit("same-as-early", 1_000, expires_at=NOW + 1_000))
    assert book.due(NOW) == []
    assert ids(book.due(NOW + 1_000)) == ["early", "same-as-early"]
    assert ids(book.due(NOW + 1_000)) == ["early", "same-as-early"]  # nothing removed yet
    book.remove("early")
    assert ids(book.due(NOW + 2_500)) == ["same-as-early", "snipe"]
    for order in book.due(NOW + 10**9):
        book.remove(order.order_id)
    assert ids(book.due(NOW + 10**9)) == [] and ids(book.candidates("SOL", "USDC", 1, 1)) == ["gtc"]


def test_a_cancelled_order_is_never_reported_due():
    book = LimitBook()
    book.add(limit("a", 1_000, expires_at=NOW + 5))
    book.remove("a")
    book.add(limit("a", 1_000, expires_at=NOW + 50))  # same id, new life, new expiry
    assert book.due(NOW + 5) == []
    assert ids(book.due(NOW + 50)) == ["a"]


@settings(max_examples=60, deadline=None)
@given(expiries=st.lists(st.one_of(st.none(), st.integers(0, 50)), max_size=80),
       cancels=st.sets(st.integers(0, 79)), clock=st.lists(st.integers(0, 60), min_size=1, max_size=6))
def test_due_matches_a_full_scan_through_cancels_and_compaction(expiries, cancels, clock):
    book = LimitBook()
    for i, offset in enumerate(expiries):
        book.add(limit(f"o{i}", 1_000, expires_at=None if offset is None else NOW + offset))
    for i in cancels:
        book.remove(f"o{i}")
    for now in sorted(clock):
        expected = sorted((o.expires_at, int(o.order_id[1:]), o.order_id) for o in map(book.get, (
            f"o{i}" for i in range(len(expiries)))) if o is not None and o.expires_at is not None
            and o.expires_at <= NOW + now)
        due = book.due(NOW + now)
        assert ids(due) == [oid for _, _, oid in expected]
        for order in due[::2]:
            book.remove(order.order_id)


def test_the_expiry_heap_sheds_cancelled_orders():
    book = LimitBook()
    for i in range(5_000):
        book.add(limit(f"o{i}", 1_000, expires_at=NOW + 10**6 + i))
    for i in range(4_990):
        book.remove(f"o{i}")
    assert len(book._expiry) < 2_500  # compacted as removals pile up
    assert ids(book.due(NOW + 2 * 10**6)) == [f"o{i}" for i in range(4_990, 5_000)]


# Sniper orders


def test_sniper_orders_wait_by_pair_in_either_direction_in_arrival_order():
    book = LimitBook()
    book.add(sniper("buy-wif", "SOL", "WIF"))
    book.add(sniper("sell-wif", "WIF", "SOL"))
    book.add(sniper("other", "USDC", "JUP"))
    book.add(sniper("buy-wif-again", "SOL", "WIF"))
    expected = ["buy-wif", "sell-wif", "buy-wif-again"]
    assert ids(book.waiting_for_pair("SOL", "WIF")) == expected
    assert ids(book.waiting_for_pair("WIF", "SOL")) == expected
    assert ids(book.waiting_for_pair("JUP", "USDC")) == ["other"]
    assert book.waiting_for_pair("SOL", "BONK") == []
    assert book.sniper_pairs() == {("SOL", "WIF"): 3, ("JUP", "USDC"): 1}
    book.add(limit("a-limit", 1_000, token_in="SOL", token_out="WIF"))
    assert len(book) == 5 and book.sides() == {("SOL", "WIF"): 1}
    assert book.sniper_pairs() == {("SOL", "WIF"): 3, ("JUP", "USDC"): 1}
    assert ids(book.waiting_for_pair("SOL", "WIF")) == expected


def test_sniper_orders_are_not_price_candidates_and_leave_their_bucket_when_removed():
    book = LimitBook()
    book.add(sniper("s", "SOL", "WIF"))
    assert book.candidates("SOL", "WIF", 10**9, 1) == []
    assert book.sides() == {}
    assert book.remove("s") and book.waiting_for_pair("SOL", "WIF") == [] and book.sniper_pairs() == {}


def test_a_resting_order_is_built_from_an_accepted_spec():
    spec = ev.OrderSpec(order_type="limit", token_in="SOL", token_out="USDC", amount_in=2_000_000_000,
                        slippage_bps=50, request_hash="h", time_in_force="GTD", expires_at=NOW + 60_000,
                        limit_price="150", min_out=300_000_000)
    order = resting_order(spec, "o1", NOW)
    assert (order.kind, order.min_out, order.expires_at, order.accepted_at) == ("limit", 300_000_000, NOW + 60_000, NOW)
    gtc = resting_order(msgspec.structs.replace(spec, time_in_force="GTC", expires_at=None), "o2", NOW)
    assert gtc.expires_at == NOW + MAX_RESTING_MS
    sniper_spec = msgspec.structs.replace(spec, order_type="sniper", time_in_force=None, expires_at=None)
    assert resting_order(sniper_spec, "o3", NOW).kind == "sniper"
