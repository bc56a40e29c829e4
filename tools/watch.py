"""`python -m tools.watch ORDER_ID [--after-seq N]`: print an order's stream, a JSON line a message.

Sends the API key (`API_KEY`, else `.run/api-key` of a running `make run`) to the gateway
(`GATEWAY_URL`, else the running `make run`'s), and exits when the server closes the
stream: status 0 after a normal close (1000), 1 otherwise, with the close code on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

import websockets

from tools import local


async def watch(order_id: str, after_seq: int | None) -> int:
    gateway = os.environ.get("GATEWAY_URL") or local.connection("gateway").gateway_url
    url = gateway.replace("http", "ws", 1).rstrip("/") + f"/api/orders/{order_id}/stream"
    if after_seq is not None:
        url += f"?afterSeq={after_seq}"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {local.api_key()}"}) as ws:
        try:
            async for message in ws:
                print(message, flush=True)
        except websockets.ConnectionClosed:
            pass
        print(f"closed: {ws.close_code} {ws.close_reason}", file=sys.stderr)
        return 0 if ws.close_code == 1000 else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.watch", description=__doc__.splitlines()[0])
    parser.add_argument("order_id")
    parser.add_argument("--after-seq", type=int, default=None, help="only events after this seq")
    args = parser.parse_args(argv)
    local.run_command(watch(args.order_id, args.after_seq), OSError)


if __name__ == "__main__":
    main()
