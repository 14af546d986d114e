"""`kiosk run --headless`: the kiosk without a screen, driven by a scripted customer.

For the crash harness (tests/crash) and soak runs: the same Runtime, devices and journal as
`kiosk run`, no Kivy. The scripted customer touches what the screens would post (start,
number, confirm, product, payment method, done); physical actions (notes into the acceptor,
paying the QR code on a phone, the card at the terminal) happen on the simulators, outside.

    kiosk run --headless --customer cash:globe-load:5000 --exit-when-settled
    kiosk run --headless --exit-when-settled          # only resume what is unfinished

`--crash-after-writes N` kills the process with SIGKILL right after the journal's N-th
durable write: fault injection for the crash harness, which restarts the kiosk and checks
the devices' own ledgers against the journal. On a clean exit it prints one JSON line:
{"writes": ..., "ref": ..., "phase": ..., "outcome": ...}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

from . import events as ev
from .config import Settings
from .engine import Phase

log = logging.getLogger("kiosk.headless")


@dataclass(frozen=True)
class Customer:
    method: str                # cash | qr | card | voucher
    product: str
    amount: int
    number: str = "09171234567"
    voucher: str = ""

    @classmethod
    def parse(cls, spec: str) -> Customer:
        """'cash:globe-load:5000[:NUMBER[:VOUCHER]]'"""
        parts = spec.split(":")
        if len(parts) < 3 or not parts[2].isdigit():
            raise ValueError(f"--customer {spec!r}: want METHOD:PRODUCT:AMOUNT[:NUMBER]")
        return cls(parts[0], parts[1], int(parts[2]), *(parts[3:5]))


class _CrashingWrites:
    """Counts the journal's durable writes; SIGKILL after the N-th (0: never)."""

    def __init__(self, crash_after: int) -> None:
        self.crash_after = crash_after
        self.writes = 0

    def __call__(self) -> None:
        self.writes += 1
        if self.crash_after and self.writes >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)


async def _until(cond: Any, timeout: float, what: str, why: Any = None) -> None:
    started = time.monotonic()
    deadline, said = started + timeout, 0
    while not cond():
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}"
                               + (f" ({why()})" if why is not None else ""))
        if why is not None and now - started > 10 * (said + 1):
            said += 1                   # what a long wait waits for, every 10 s
            log.warning("still waiting for %s: %s", what, why())
        await asyncio.sleep(0.02)


async def _customer(rt: Any, c: Customer, timeout: float) -> None:
    await _until(lambda: rt.state.phase is Phase.IDLE, timeout, "the attract screen")
    for e in (ev.Start(), ev.NumberEntered(c.number), ev.ConfirmNumber(True)):
        rt.post(e)
    await _until(lambda: rt.state.offered is not None, timeout, "the number check")
    rt.post(ev.ChooseProduct(c.product, c.amount))
    await _until(lambda: c.method in rt.state.methods, timeout, f"{c.method} offered")
    rt.post(ev.ChoosePayment(c.method))
    if c.method == "voucher" and c.voucher:
        await _until(lambda: rt.state.txn.ref, timeout, "a reference")
        rt.post(ev.VoucherEntered(c.voucher))
    await _until(lambda: rt.state.phase in (Phase.RESULT, Phase.RECEIPT, Phase.IDLE), timeout,
                 "the result")
    await _until(lambda: rt.state.receipt_printed is not None or not rt.state.txn.paid,
                 timeout, "the receipt")


def _settled(rt: Any) -> bool:
    return (rt.state.phase in (Phase.IDLE, Phase.RESULT, Phase.RECEIPT)
            and not rt.background and not rt.qr_closing and not rt.journal.unresolved())


async def _main(settings: Settings, customer: Customer | None, crash_after: int,
                exit_when_settled: bool, timeout: float) -> dict[str, Any]:
    from .runtime import Runtime
    rt = Runtime(settings)
    counter = _CrashingWrites(crash_after)
    rt.journal.after_write = counter
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await rt.start()
    # Devices that reset at start (the note acceptor) must be ready before a customer.
    cash = rt.devices["cash"]
    if getattr(cash, "ok", True) is not True:
        await _until(lambda: cash.ok is True, timeout, "the note acceptor ready")
    try:
        if customer is not None:
            await asyncio.wait({asyncio.ensure_future(_customer(rt, customer, timeout)),
                                asyncio.ensure_future(stop.wait())},
                               return_when=asyncio.FIRST_COMPLETED)
        if exit_when_settled:
            await _until(lambda: _settled(rt) or stop.is_set(), timeout, "settled", lambda: (
                f"phase {rt.state.phase.value}, background {sorted(rt.background)}, QR orders"
                f" closing {sorted(rt.qr_closing)}, open"
                f" {[r.ref for r in rt.journal.unresolved()]}"))
        else:
            await stop.wait()
        t = rt.state.txn
        return {"writes": counter.writes, "ref": t.ref, "phase": rt.state.phase.value,
                "outcome": t.outcome.value if t.outcome else None,
                "unresolved": [r.ref for r in rt.journal.unresolved()]}
    finally:
        await rt.stop()


def run(settings: Settings, customer: str | None, crash_after: int, exit_when_settled: bool,
        timeout: float = 120.0) -> int:
    c = Customer.parse(customer) if customer else None
    try:
        summary = asyncio.run(_main(settings, c, crash_after, exit_when_settled, timeout))
    except TimeoutError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    print(json.dumps(summary), flush=True)
    return 0
