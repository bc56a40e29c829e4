"""Store times as nats-server writes them (`Nats-Time-Stamp`), read to the millisecond."""

from datetime import datetime, timezone

import pytest

from shared.eventlog import stamp_ms


@pytest.mark.parametrize("text,expected", [
    ("2026-11-30T18:45:12.123456789Z", datetime(2026, 11, 30, 18, 45, 12, 123000, tzinfo=timezone.utc)),
    ("2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=timezone.utc)),
    ("1999-12-31T23:59:59.9Z", datetime(1999, 12, 31, 23, 59, 59, 900000, tzinfo=timezone.utc)),
    ("2024-02-29T12:00:00.000999999Z", datetime(2024, 2, 29, 12, tzinfo=timezone.utc)),
])
def test_a_store_time_is_read_to_the_millisecond_rounded_down(text, expected):
    assert stamp_ms(text) == int(expected.timestamp() * 1000)


@pytest.mark.parametrize("text", ["2026-11-30 18:45:12Z", "2026-11-30T18:45Z", "yesterday"])
def test_a_time_in_another_shape_is_refused(text):
    with pytest.raises(ValueError):
        stamp_ms(text)
