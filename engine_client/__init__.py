"""A typed async client of the order execution engine's public API (and the `engine` CLI)."""

from engine_client.client import EngineClient
from engine_client.types import (
    TERMINAL,
    ApiError,
    Cancelled,
    Event,
    LimitOrder,
    MarketOrder,
    Order,
    OrderPage,
    OrderView,
    PairQuotes,
    SniperOrder,
    Submitted,
    VenueQuote,
    stream_message,
)

__all__ = [
    "TERMINAL", "ApiError", "Cancelled", "EngineClient", "Event", "LimitOrder", "MarketOrder", "Order",
    "OrderPage", "OrderView", "PairQuotes", "SniperOrder", "Submitted", "VenueQuote", "stream_message",
]
