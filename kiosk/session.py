"""One engine state and the effects it asks for: the step of the imperative shell.

For every event, in this order:

    journal (if it concerns money; a keyed fact once) -> engine.step
        -> journal each money effect, then perform it (the effect table)

and only after the queue of events is drained are the screens told (the runtime's
listeners), so nothing a screen does can break a money step.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from . import events as ev
from . import journal_health
from .engine import Engine, Phase, State

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("kiosk.session")

# Effects a background session must not perform: the devices belong to the customer in front.
DEVICE_EFFECTS = (ev.EnableCash, ev.DisableCash, ev.StackNote, ev.ReturnNote, ev.AbortCard,
                  ev.PrintReceipt, ev.LookupSubscriber, ev.CheckSubscriber, ev.QueryBalance)
PAY_PHASES = (Phase.PAY_CASH, Phase.PAY_QR, Phase.PAY_CARD, Phase.PAY_VOUCHER)


class Session:
    def __init__(self, rt: Runtime, engine: Engine, state: State, background: bool) -> None:
        self.rt = rt
        self.engine = engine
        self.state = state
        self.background = background
        self._queue: deque[tuple[ev.Record, bool]] = deque()
        self._busy = False
        self._changed = False
        self.done = asyncio.Event()

    def post(self, e: ev.Record, journaled: bool = False) -> None:
        self._queue.append((e, journaled))
        if self._busy:
            return                      # the running drain picks it up, in order
        self._busy = True
        try:
            while self._queue:
                self._step(*self._queue.popleft())
        except Exception as exc:
            if not journal_health.is_write_failure(exc):
                raise
            # Nothing after the failed write was performed (journal first, then act):
            # out of service until the journal can be written again.
            self._queue.clear()
            self._busy = False
            journal_health.write_failed(self.rt, exc)
        finally:
            self._busy = False
        if self._changed:
            self._changed = False
            self.rt.notify(self)                # the screens: after the money step

    @property
    def ref(self) -> str | None:
        return self.state.txn.ref

    def _ref_of(self, rec: ev.Record) -> str | None:
        return getattr(rec, "ref", None) or self.state.txn.ref

    def _journals(self, e: ev.Record) -> bool:
        if e.money:
            return True
        # Leaving a payment decides where its money goes (voucher, close): journal it too, so
        # a transaction rebuilt after a crash takes the same path and issues nothing twice.
        if isinstance(e, ev.ChoosePayment) and self.state.phase is Phase.PAY_VOUCHER:
            return True                 # the rest in cash: the same reference goes on
        return (isinstance(e, (ev.Cancel, ev.Back, ev.Timeout)) and self.state.txn.ref is not None
                and self.state.phase in PAY_PHASES)

    def carry_out(self, eff: ev.Record) -> None:
        """Journal a money effect, then perform it: the one place of that rule."""
        if eff.money:
            entry = self.rt.journal.enter(self._ref_of(eff), eff)
            if not entry.new:
                log.warning("%s for %s already journaled: not performed again", eff.kind(),
                            entry.ref)
                return
        self.rt.perform(self, eff)

    def _step(self, e: ev.Record, journaled: bool) -> None:
        if not journaled and self._journals(e):
            entry = self.rt.journal.enter(self._ref_of(e), e)
            if not entry.new:
                # A device or service told the same money fact twice: it counts once.
                log.warning("%s for %s repeated: entered once already", e.kind(), entry.ref)
                if self.background and self.rt.journal.is_closed(self.state.txn.ref):
                    self.done.set()     # the other session that heard it first finished it
                return
            e = entry.record
        before = self.state
        self.state, effects = self.engine.step(before, e)
        log.debug("%s: %s -> %s", type(e).__name__, before.phase.value, self.state.phase.value)
        for eff in effects:
            if self.background and isinstance(eff, DEVICE_EFFECTS):
                continue
            self.carry_out(eff)
        if self.state is not before:
            self._changed = True
            self.rt.changed(self, before)       # the shell's own bookkeeping, no screens
        if self.background and self.finished:
            self.done.set()

    @property
    def finished(self) -> bool:
        """A background session is done when its transaction is closed or abandoned (an
        unpaid payment closed as cancelled leaves the state without a reference)."""
        s = self.state
        return s.txn.closed or s.phase is Phase.IDLE or s.txn.ref is None
