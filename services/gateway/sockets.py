"""What a WebSocket stream does with the client's side of the connection.

The order and quote streams only send. A client that sends anyway is closed with 1008
(policy violation) rather than ignored: ignoring means reading and discarding whatever
it sends, for as long as it likes. Messages larger than the transport's limit never get
here: the WebSocket protocol closes those with 1009.
"""

from __future__ import annotations

from litestar import WebSocket

POLICY_VIOLATION = 1008


async def client_gone(socket: WebSocket) -> int | None:
    """Returns when the client leaves (None) or sends something (the close code to use)."""
    message = await socket.receive()
    return None if message["type"] == "websocket.disconnect" else POLICY_VIOLATION


async def close_for(socket: WebSocket, code: int | None) -> None:
    """Close a stream whose client sent something; nothing to do for one that left."""
    if code is not None:
        await socket.close(code=code, reason="this stream accepts no messages")
