"""Running the stack's services as child processes: their output behind their names, and a stop.

`supervise` starts each service in its own session (the terminal's Ctrl-C reaches only the
launcher, which stops the children in order) and returns when `stop` is set (status 0) or
when one of them exits on its own (status 1). Either way every child then gets SIGTERM,
and SIGKILL once the grace period is over or `force` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping, Sequence
from typing import TextIO

import msgspec

from tools.devservers import die_with_parent

STOP_TIMEOUT = 10.0
_COLOURS = ("36", "35", "33", "32", "34", "96", "95", "93")  # ANSI foreground codes
_RED = "31;1"
_LINE_LIMIT = 1 << 20


class ServiceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One child process of the stack: a display name and the command that runs it."""

    name: str
    argv: tuple[str, ...]
    #: Variables of this service alone (its credentials), over the stack's environment.
    env: dict[str, str] = msgspec.field(default_factory=dict)


class Console:
    """Writes lines behind a fixed-width, optionally coloured, name column."""

    def __init__(self, out: TextIO, names: Sequence[str], *, colour: bool) -> None:
        self._out = out
        self._width = max(len(n) for n in [*names, "run"])
        self._colour = colour
        self._codes = {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(names)}

    def prefix(self, name: str, *, alarm: bool = False) -> str:
        label = f"{name:<{self._width}} |"
        code = _RED if alarm else self._codes.get(name)
        if self._colour and code:
            label = f"\x1b[{code}m{label}\x1b[0m"
        return label + " "

    def line(self, name: str, text: str, *, alarm: bool = False) -> None:
        prefix = self.prefix(name, alarm=alarm)
        self._out.writelines(prefix + part + "\n" for part in text.splitlines() or [""])
        self._out.flush()

    def say(self, text: str, *, alarm: bool = False) -> None:
        self.line("run", text, alarm=alarm)


async def supervise(
    services: Sequence[ServiceSpec],
    *,
    env: Mapping[str, str],
    console: Console,
    stop: asyncio.Event,
    force: asyncio.Event | None = None,
    stop_timeout: float = STOP_TIMEOUT,
) -> int:
    """Run `services` until `stop` is set (exit status 0) or one of them exits (status 1).

    Either way every child is then stopped: SIGTERM, and SIGKILL for those still running
    after `stop_timeout` seconds or once `force` is set.
    """
    force = asyncio.Event() if force is None else force
    children: dict[str, asyncio.subprocess.Process] = {}
    pumps: list[asyncio.Task[None]] = []
    for spec in services:
        try:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**env, **spec.env},
                limit=_LINE_LIMIT,
                # Own session: the terminal's Ctrl-C reaches only us, and we stop the
                # children in order; they still die with us if we are killed outright.
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        except OSError as error:
            console.say(f"!!! cannot start {spec.name}: {error}", alarm=True)
            await _stop_children(children, console, stop_timeout, force)
            await asyncio.gather(*pumps)
            return 1
        children[spec.name] = process
        pumps.append(asyncio.create_task(_pump(spec.name, process, console)))

    exits = {asyncio.create_task(p.wait()): name for name, p in children.items()}
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stopped, *exits}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if stopped not in done:
        for task in done:
            console.say(
                f"!!! {exits[task]} exited unexpectedly with code {task.result()}; "
                "stopping the stack",
                alarm=True,
            )
        status = 1
    stopped.cancel()
    await _stop_children(children, console, stop_timeout, force)
    await asyncio.gather(*pumps, *exits)
    return status


async def _pump(name: str, process: asyncio.subprocess.Process, console: Console) -> None:
    stream = process.stdout
    assert stream is not None
    while True:
        try:
            raw = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as end:
            raw = end.partial
        except asyncio.LimitOverrunError as long:  # longer than the buffer: pass it in pieces
            raw = await stream.readexactly(long.consumed)
        if not raw:
            return
        console.line(name, raw.decode("utf-8", errors="replace"))


async def _stop_children(
    children: Mapping[str, asyncio.subprocess.Process],
    console: Console,
    timeout: float,
    force: asyncio.Event,
) -> None:
    running = {n: p for n, p in children.items() if p.returncode is None}
    if not running:
        return
    console.say(f"stopping {', '.join(running)}")
    for process in running.values():
        _send(process, signal.SIGTERM)
    waits = {asyncio.create_task(p.wait()): n for n, p in running.items()}
    forced = asyncio.create_task(force.wait())
    deadline = asyncio.get_running_loop().time() + timeout
    pending = set(waits)
    while pending and not forced.done():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(
            {*pending, forced}, timeout=left, return_when=asyncio.FIRST_COMPLETED
        )
        pending.discard(forced)
    forced.cancel()
    for task in pending:
        name = waits[task]
        console.say(f"{name} did not stop in time; killing it", alarm=True)
        _send(running[name], signal.SIGKILL)
    await asyncio.gather(*waits)


def _send(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)
