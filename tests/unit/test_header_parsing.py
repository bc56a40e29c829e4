"""The gathering client parses message headers exactly as nats-py does, only faster."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from shared.natsclient import GatheringClient, parse_header_lines

NAME_BYTES = st.sampled_from([b"a", b"Z", b"-", b"_", b"1", b" ", b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1f",
                              b"\x85", b"\xc3\xa9", b":", b"\r", b"\n"])
VALUE_BYTES = st.sampled_from([b"v", b" ", b"\t", b":", b"\xff", b"\xe2\x82\xac", b"\r", b"\n", b"0"])


@st.composite
def header_blocks(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        name = b"".join(draw(st.lists(NAME_BYTES, max_size=6)))
        value = b"".join(draw(st.lists(VALUE_BYTES, max_size=6)))
        lines.append(name + draw(st.sampled_from([b":", b": ", b""])) + value)
    return b"\r\n".join(lines) + draw(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]))


@settings(max_examples=500)
@given(header_blocks())
def test_the_header_parser_gives_what_nats_py_gives(raw):
    assert parse_header_lines(raw) == Client._parse_header_lines(raw)


def test_the_order_log_headers_parse_to_their_values():
    raw = (b"Nats-Msg-Id: ord_1:3\r\nNats-Expected-Last-Subject-Sequence: 41\r\n"
           b"Event-Type: OrderRouted\r\nOrder-Type: market\r\n\r\n")
    assert GatheringClient._parse_header_lines(raw) == {
        "Nats-Msg-Id": "ord_1:3",
        "Nats-Expected-Last-Subject-Sequence": "41",
        "Event-Type": "OrderRouted",
        "Order-Type": "market",
    }
