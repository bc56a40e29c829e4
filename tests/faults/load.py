"""A seeded open-loop load of market orders, sent as a careful trading client would.

Orders go out at a fixed rate, spread round-robin over the gateway replicas as a load
balancer would. A request that gets no answer (the gateway died, the connection broke, the
answer timed out), a 5xx or a 429 is retried on the next replica: with the same body when
the order has a `clientOrderId` (the engine must answer the same order), as a new order
when it has none (what a client without a key can do). Every attempt sells a distinct
amount, so each order in the log can be traced to the one request that created it.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal

import httpx

from shared.market.tokens import get_token

#: (tokenIn, tokenOut, amount in tokenIn's base units): small orders on pairs with pools.
PAIRS = (
    ("SOL", "USDC", 500_000_000),
    ("USDC", "SOL", 75_000_000),
    ("SOL", "USDT", 400_000_000),
    ("BONK", "SOL", 5_000_000_000),
)
SLIPPAGE_BPS = 300
RETRIED = {408, 429}


@dataclass
class Attempt:
    gateway: str
    amount_in: int
    sent: float  # wall clock, seconds: comparable with the events' occurredAt
    answered: float | None = None
    status: int | None = None  # None: no answer at all
    error: str = ""
    order_id: str | None = None  # named by the answer (a 2xx, or an error that names it)


@dataclass
class Intent:
    """One order the client wants placed, and every request it took."""

    index: int
    token_in: str
    token_out: str
    client_order_id: str | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def accepted(self) -> Attempt | None:
        """The first attempt answered 2xx: the engine took the order on."""
        return next((a for a in self.attempts if a.status is not None and 200 <= a.status < 300), None)

    @property
    def first_sent(self) -> float:
        return self.attempts[0].sent


class LoadDriver:
    def __init__(
        self,
        gateways: list[str],
        api_key: str,
        *,
        rate: float,
        count: int,
        seed: int,
        keyed_share: float = 0.75,
        answer_timeout: float = 10.0,
        give_up_after: float = 60.0,
    ) -> None:
        self.gateways = gateways
        self.rate = rate
        self.count = count
        self.intents: list[Intent] = []
        self._rng = random.Random(seed)
        self._seed = seed
        self._keyed_share = keyed_share
        self._give_up_after = give_up_after
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout = answer_timeout
        self._next_gateway = 0
        self._next_amount = 0
        self._waiters: list[tuple[int, asyncio.Event]] = []
        self.started = 0.0
        self.finished = 0.0

    async def run(self) -> None:
        """Send every order at its time and follow each until answered or given up."""
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(headers=self._headers, timeout=self._timeout, limits=limits) as http:
            self.started = time.time()
            tasks = []
            for index in range(self.count):
                delay = self.started + index / self.rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # the load's own pace, not a wait for the engine
                tasks.append(asyncio.create_task(self._place(http, self._intent(index))))
                self._progress(index + 1)
            await asyncio.gather(*tasks)
        self.finished = time.time()

    async def submitted(self, count: int) -> None:
        """Until `count` orders have been sent (the load's clock for scheduling faults)."""
        if len(self.intents) >= count:
            return
        event = asyncio.Event()
        self._waiters.append((count, event))
        await event.wait()

    def _progress(self, sent: int) -> None:
        for waiter in [w for w in self._waiters if w[0] <= sent]:
            self._waiters.remove(waiter)
            waiter[1].set()

    def _intent(self, index: int) -> Intent:
        token_in, token_out, _ = PAIRS[index % len(PAIRS)]
        keyed = self._rng.random() < self._keyed_share
        intent = Intent(
            index=index,
            token_in=token_in,
            token_out=token_out,
            client_order_id=f"fault-{self._seed}-{index}" if keyed else None,
        )
        self.intents.append(intent)
        return intent

    def _amount(self, intent: Intent) -> int:
        base = next(amount for t_in, t_out, amount in PAIRS if (t_in, t_out) == (intent.token_in, intent.token_out))
        self._next_amount += 1
        return base + self._next_amount  # distinct across all attempts of the run

    async def _place(self, http: httpx.AsyncClient, intent: Intent) -> None:
        amount = self._amount(intent)
        turn = self._next_gateway
        self._next_gateway += 1
        while True:
            gateway = self.gateways[turn % len(self.gateways)]
            turn += 1  # a retry goes to the next replica, as a load balancer sends it past a failed one
            attempt = Attempt(gateway=gateway, amount_in=amount, sent=time.time())
            intent.attempts.append(attempt)
            retry_after = await self._send(http, intent, attempt)
            if retry_after is None or time.time() - intent.first_sent > self._give_up_after:
                return
            await asyncio.sleep(retry_after)  # the client's back-off before asking again
            if intent.client_order_id is None:
                amount = self._amount(intent)  # without a key a retry is a new order

    async def _send(self, http: httpx.AsyncClient, intent: Intent, attempt: Attempt) -> float | None:
        """Send one request; the delay before retrying, or None when the answer is final."""
        body = {
            "tokenIn": intent.token_in,
            "tokenOut": intent.token_out,
            "amount": _decimal(intent.token_in, attempt.amount_in),
            "slippageBps": SLIPPAGE_BPS,
        }
        if intent.client_order_id is not None:
            body["clientOrderId"] = intent.client_order_id
        try:
            response = await http.post(f"{attempt.gateway}/api/orders/execute", json=body)
        except httpx.HTTPError as error:
            attempt.answered = time.time()
            attempt.error = f"{type(error).__name__}: {error}"[:200]
            return 0.2
        attempt.answered = time.time()
        attempt.status = response.status_code
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        attempt.order_id = answer.get("orderId") if isinstance(answer, dict) else None
        if response.status_code < 300:
            return None
        attempt.error = response.text[:200]
        if response.status_code >= 500 or response.status_code in RETRIED:
            return min(1.0, _retry_after(response) or 0.2)
        return None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _decimal(symbol: str, base_units: int) -> str:
    return str(Decimal(base_units).scaleb(-get_token(symbol).decimals))
