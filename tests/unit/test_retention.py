"""The order log's retention rule and the figures the projector exports about the stream."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.retention import DAY_MS, MAX_RESTING_MS, LogRoom, check_limits, resting_deadline, stream_usage

NOW = dt.datetime(2026, 11, 30, 14, 0, tzinfo=dt.timezone.utc).timestamp()


def info(first_ts: str, messages: int = 10, max_age_ns: int = 32 * 86_400 * 10**9, max_bytes: int = 4096) -> dict:
    return {"config": {"max_age": max_age_ns, "max_bytes": max_bytes},
            "state": {"messages": messages, "bytes": 2048, "first_seq": 5, "last_seq": 14, "first_ts": first_ts}}


def test_the_usage_of_a_stream_is_read_from_its_raw_info_with_the_age_of_its_first_message() -> None:
    usage = stream_usage(info("2026-11-30T12:59:59.250000000Z"), NOW)
    assert usage == {"bytes": 2048.0, "messages": 10.0, "age": pytest.approx(3600.75), "max_bytes": 4096.0,
                     "max_age": 32 * 86_400.0}


def test_an_empty_stream_without_limits_reports_no_age_and_minus_one_for_each_limit() -> None:
    usage = stream_usage(info("0001-01-01T00:00:00Z", messages=0, max_age_ns=0, max_bytes=-1), NOW)
    assert (usage["age"], usage["max_age"], usage["max_bytes"]) == (0.0, -1.0, -1.0)


def test_a_refused_info_request_is_an_error_not_zeros() -> None:
    with pytest.raises(RuntimeError, match="stream not found"):
        stream_usage({"error": {"code": 404, "description": "stream not found"}}, NOW)


def test_the_log_must_keep_events_a_day_longer_than_any_order_may_rest() -> None:
    check_limits(31, 1)
    for days, size in ((30.9, 1), (30, 10**9)):
        with pytest.raises(ValueError, match="ORDERS_MAX_AGE_DAYS"):
            check_limits(days, size)
    with pytest.raises(ValueError, match="ORDERS_MAX_BYTES"):
        check_limits(40, 0)


def test_a_resting_order_expires_at_its_own_expiry_or_after_the_longest_rest_whichever_comes_first() -> None:
    assert resting_deadline(1_000, None) == 1_000 + MAX_RESTING_MS
    assert resting_deadline(1_000, 2_000) == 2_000
    assert resting_deadline(1_000, 1_000 + 400 * DAY_MS) == 1_000 + MAX_RESTING_MS


def test_the_log_has_room_for_new_orders_until_it_is_within_the_reserve_of_its_byte_limit() -> None:
    room = LogRoom(0.05)
    assert not room.full  # no sample yet: intake is not held back by a missing figure
    room.update({"bytes": 949.0, "max_bytes": 1000.0})
    assert not room.full
    room.update({"bytes": 950.0, "max_bytes": 1000.0})
    assert room.full
    room.update({"bytes": 10**12, "max_bytes": -1.0})  # no byte limit
    assert not room.full
    with pytest.raises(ValueError, match="reserve"):
        LogRoom(1.0)
