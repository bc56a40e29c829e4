"""What the simulated chain will do to a market order, known from its id before it is placed.

The chain draws each attempt's fate from its seed and the memo `order:<orderId>:<attempt>`
(`shared.chain.draws`), and a keyed order id is a function of the account, the
`clientOrderId` and the server's secret. So a test computes every order's events and final
status up front, and picks client ids whose orders take the paths it wants to see. Timing
cannot change a draw; it can only add failures a draw does not know about (a blockhash that
expires before the transaction lands, a market that moves past the order's minimum), so the
stacks and orders that rely on this keep the blockhash window and the slippage generous.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from services.executor.build import memo
from services.executor.settings import ExecutorSettings
from shared.accounts import KeyStore
from shared.chain import ChainConfig, FailureKind, failure_for
from shared.ids import order_id_for_client_key
from shared.settings import load
from shared.simulation import SimSettings
from shared.topology import Topology

# Far beyond what the simulated market moves while an order is routed, retried and landed
# (at most about 1.2 % over 10 s on the listed pairs), so no order fails on slippage.
IMMUNE_SLIPPAGE_BPS = 1000


@dataclass(frozen=True)
class Outcome:
    """The transient failures an order's attempts suffer, in order, and what follows."""

    order_id: str
    failures: tuple[FailureKind, ...]
    max_attempts: int

    @property
    def exhausted(self) -> bool:
        return len(self.failures) == self.max_attempts

    @property
    def status(self) -> str:
        return "failed" if self.exhausted else "confirmed"

    @property
    def code(self) -> str | None:
        return "attempts_exhausted" if self.exhausted else None

    @property
    def attempts(self) -> int:
        """Transactions built: one per failure, and the one that lands unless all failed."""
        return len(self.failures) + (not self.exhausted)

    @property
    def events(self) -> list[str]:
        """Every event of the order, from acceptance to the terminal one."""
        kinds = ["OrderAccepted", "RoutingStarted", "OrderRouted"]
        for failure in self.failures:
            kinds.append("TransactionBuilt")
            if failure == "dropped":  # accepted, then never landed; the others were refused at submission
                kinds.append("TransactionSubmitted")
            kinds.append("AttemptFailed")
        kinds += ["OrderFailed"] if self.exhausted else ["TransactionBuilt", "TransactionSubmitted", "OrderConfirmed"]
        return kinds


def outcome(config: ChainConfig, order_id: str, max_attempts: int) -> Outcome:
    failures: list[FailureKind] = []
    for attempt in range(1, max_attempts + 1):
        failure = failure_for(config, memo(order_id, attempt))
        if failure is None:
            break
        failures.append(failure)
    return Outcome(order_id=order_id, failures=tuple(failures), max_attempts=max_attempts)


@dataclass(frozen=True)
class Foresight:
    """The outcomes of one stack's keyed market orders, for one account."""

    secret: bytes
    account: str
    chain: ChainConfig
    max_attempts: int

    @classmethod
    async def of(cls, stack, account: str = "e2e") -> "Foresight":
        """Read the stack's order-id secret (as the admin) and its chain and executor settings."""
        nc = await stack.admin_nats()
        try:
            store = await KeyStore.open(nc.jetstream(), Topology(namespace=stack.env["ENGINE_NAMESPACE"]))
            secret = await store.order_id_secret()
        finally:
            await nc.close()
        return cls(
            secret=secret,
            account=account,
            chain=load(SimSettings, stack.env).chain_config(),
            max_attempts=load(ExecutorSettings, stack.env).executor_max_attempts,
        )

    def outcome(self, client_order_id: str) -> Outcome:
        order_id = order_id_for_client_key(self.secret, self.account, client_order_id)
        return outcome(self.chain, order_id, self.max_attempts)

    def pick(self, prefix: str, count: int, wanted: tuple[Callable[[Outcome], bool], ...] = ()) -> dict[str, Outcome]:
        """`count` client ids `<prefix>-<n>` with their outcomes: one meeting each of `wanted`, the rest any.

        Client ids are tried in order of n, so the choice is a pure function of the secret.
        """
        assert len(wanted) <= count
        chosen: dict[str, Outcome] = {}
        unmet = list(wanted)
        filler = count - len(wanted)
        for n in itertools.count():
            if not unmet and filler == 0:
                return chosen
            assert n < 100_000, f"no order id meets what remains of the wanted outcomes: {unmet}"
            key = f"{prefix}-{n}"
            found = self.outcome(key)
            meets = next((w for w in unmet if w(found)), None)
            if meets is not None:
                unmet.remove(meets)
                chosen[key] = found
            elif filler > 0:
                filler -= 1
                chosen[key] = found
