"""The imperative shell: sessions, devices, the money gate, timers and recovery.

One asyncio loop runs the UI, the engine and the backends. Its parts, each in its own home:

    composition.py   which driver, client or simulator serves each device (built once)
    gate.py          money facts from device threads enter the journal once, durably,
                     before the device is answered, without waiting on this loop
    session.py       journal -> engine.step -> journal each money effect -> perform it
    effects.py       the table of effect handlers (calls_backend.py, calls_payment.py:
                     the asyncio tasks of the provider, the wallet and the card terminal)
    timers.py        inactivity, QR expiry, periodic checks
    recovery.py      what a restart does first for each unfinished transaction

The customer's visit is the main `Session`. Transactions left unfinished (by a crash, or a
top-up still PENDING when the customer leaves) get a background `Session` of their own,
rebuilt from the journal, that works on them until every unit of money is accounted for.
The screens are told of a change after the step that made it (listeners: their errors are
logged, never raised into a money step).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from drivers.base import DeviceError

from . import backup, calls_payment, effects, journal_health, receipts, recovery, timers
from . import events as ev
from .backend.base import TopUpBackend
from .composition import build_devices
from .config import Settings
from .engine import Engine, Outcome, Phase, Policy, State
from .gate import Gate
from .journal import Journal
from .lock import FolderLock
from .payments.wallet import WalletProvider
from .session import Session
from .voucher_guard import VoucherGuard

log = logging.getLogger("kiosk.runtime")

Listener = Callable[[State], None]
DEVICES = ("sim_reader", "cash", "card", "printer")


class Runtime:
    # Timings of the payment tasks (calls_payment.py); tests shorten them.
    LATE_WATCH_S = 600.0             # a closed QR order is watched this long for a payment
    LATE_POLL_S = 2.0                # first wait between looks; grows to 30 s
    QR_POLL_S = 1.0                  # an open QR order's status is asked this often
    REVERSE_TRIES = 8
    REVERSE_WAIT_S = 1.0
    CARD_RESOLVE_TRIES = 10
    CARD_RESOLVE_WAIT_S = 2.0
    # A note the journal says was told to stack, with no outcome: the acceptor's start-up
    # says what became of it; with no word by then it is booked in doubt.
    NOTE_VERDICT_S = 60.0

    def __init__(self, settings: Settings, devices: dict[str, Any] | None = None) -> None:
        self.settings = settings
        # One kiosk per data folder: a second one refuses here (KioskBusy), before it
        # touches the journal or a device.
        self.lock = FolderLock(settings.data_dir).acquire()
        policy = Policy(max_overpay=settings.max_overpay,
                        max_unknown_queries=settings.max_unknown_queries,
                        min_note=min(settings.cash_denominations))
        self.engine = Engine(settings.catalog, policy)
        # Background sessions never give up on a top-up's answer.
        self.bg_engine = Engine(settings.catalog, replace(policy, max_unknown_queries=10**9))
        self.journal = Journal(settings.journal_path, settings.kiosk_id, settings.currency)
        self.gate = Gate(settings.journal_path, settings.kiosk_id, settings.currency,
                         self._from_device_thread)
        self.gate.after_write = self._after_gate_write
        self.gate.failed = self._gate_failed
        self.journal_down: str | None = None        # why the kiosk cannot sell (journal_health)
        self.voucher_guard = VoucherGuard()
        self.devices: dict[str, Any] = build_devices(settings, devices)
        self.main = Session(self, self.engine, State(), background=False)
        self.background: dict[str, Session] = {}
        self.listeners: list[Listener] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.last_activity = time.monotonic()
        self.warning_until: float | None = None     # "Need more time?" deadline (monotonic)
        self.receipt: receipts.Receipt | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.card_committed: dict[str, ev.CardApproved] = {}   # entered by the card's thread
        self.box_was_removed = False
        self.qr_closing: set[str] = set()          # QR orders being closed right now

    # ------------------------------------------------------------------ accessors
    @property
    def state(self) -> State:
        return self.main.state

    @property
    def backend(self) -> TopUpBackend:
        return self.devices["backend"]

    @property
    def wallet(self) -> WalletProvider:
        return self.devices["wallet"]

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        cash, card = self.devices["cash"], self.devices["card"]
        if hasattr(cash, "commit"):
            cash.commit = self.gate.commit
        if hasattr(cash, "pending_note"):
            cash.pending_note = self.gate.pending_note
        if hasattr(card, "commit"):
            card.commit = self._card_commit
        self.gate.open()
        # Unfinished transactions first: a note the acceptor finishes at its start-up is
        # delivered to the background session that waits for it.
        self.recover()
        timers.check_cash_box(self)        # a box journaled out stays out after a restart
        for name in DEVICES:
            try:
                await self.devices[name].start(self.post_threadsafe)
            except DeviceError as exc:
                log.error("device %s unavailable at start: %s", name, exc)
                self.post(ev.DeviceStatus(name, False, str(exc)))
        self.spawn(timers.tick(self))
        from .voucher_delivery import start as send_vouchers
        send_vouchers(self)     # every voucher no SMS gateway accepted yet: now
        from .late_credit import watch as late_credits  # top-ups credited after a failure
        self.spawn(late_credits(self))
        b = self.settings.backup
        if b.folder is not None:
            self.spawn(backup.every(self.settings.journal_path, b.folder, self.settings.kiosk_id,
                                    b.interval_min * 60.0, b.keep))

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for name in DEVICES:
            try:
                await self.devices[name].stop()
            except Exception:
                log.exception("stopping %s", name)
        for name in ("backend", "wallet"):
            close = getattr(self.devices[name], "aclose", None)
            if close is not None:
                await close()                   # HTTP clients: close their connections
        self.gate.close()
        self.journal.close()
        self.lock.release()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def _gate_failed(self, exc: BaseException) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(journal_health.write_failed, self, exc)

    def _after_gate_write(self) -> None:
        hook = self.journal.after_write          # the crash harness counts both connections
        if hook is not None:
            hook()

    # ------------------------------------------------------------------ events in
    def post(self, e: ev.Record) -> None:
        """Feed the customer's session (UI and drivers). Loop thread only."""
        if isinstance(e, (ev.NoteEscrowed, ev.NoteCredited, ev.Start, ev.NumberEntered,
                          ev.ConfirmNumber, ev.ChooseProduct, ev.ChoosePayment, ev.Back,
                          ev.ShowReceipt, ev.SimIdentified)):
            self.touched()
        if isinstance(e, ev.DeviceStatus) and e.device == "cash" and e.ok \
                and self.box_was_removed:
            e = ev.DeviceStatus("cash", False, "cash box removed")    # whatever it says
        if isinstance(e, ev.ChoosePayment):
            journal_health.check(self)          # room to journal it, before money is taken
        self.main.post(e)

    def post_threadsafe(self, e: ev.Record) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.post, e)

    def _from_device_thread(self, e: ev.Record) -> None:
        """The gate entered a money fact: step the session that owns it (loop thread)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.deliver, e)

    def deliver(self, e: ev.Record) -> None:
        """A money fact already in the journal: to the session of its transaction (a
        background one after a restart), else to the customer's (which books an orphan)."""
        ref = getattr(e, "ref", None)
        session = self.background.get(ref) if ref else None
        if session is not None:
            session.post(e, journaled=True)
            return
        if isinstance(e, ev.NoteCredited):
            self.touched()                       # a note in counts as the customer's touch
        self.main.post(e, journaled=True)

    def _card_commit(self, ref: str, r: Any) -> bool:
        """From the card driver's thread, before it confirms an approval to the terminal:
        CardApproved entered through the gate, and nothing else. The engine is stepped with
        it once the terminal has the confirmation (calls_payment.card_authorise), so nothing
        that depends on the payment (the top-up) happens before it is final there."""
        rec = self.gate.commit_card(ref, r)
        if rec is None:
            return False
        self.card_committed[ref] = rec
        return True

    def touched(self) -> None:
        """The customer did something: restart the inactivity clock, drop any warning."""
        self.last_activity = time.monotonic()
        if self.warning_until is not None:
            self.warning_until = None
            self.notify(self.main)

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def changed(self, session: Session, before: State) -> None:
        """The shell's bookkeeping after a step that changed `session` (no screens here)."""
        if session is not self.main:
            return
        s = self.state
        if s.phase is not before.phase:
            self.touched()
            if s.phase is Phase.IDLE:
                self.receipt = None
        if (s.txn.outcome is Outcome.PENDING and before.txn.outcome is not Outcome.PENDING
                and s.txn.ref and s.txn.ref not in self.background):
            # The customer leaves with a PENDING receipt; a background session keeps asking.
            bg = Session(self, self.bg_engine, s, background=True)
            self.background[s.txn.ref] = bg
            self.spawn(self._run_background(bg, (), [ev.TopUpUnknown(s.txn.ref, "pending")]))

    def notify(self, session: Session) -> None:
        """Tell the screens; a failing listener is logged and never reaches the caller."""
        if session is not self.main:
            return
        for fn in list(self.listeners):
            try:
                fn(self.state)
            except Exception:
                log.exception("listener %r failed", fn)

    # The screens and tests call these names.
    def timeouts(self) -> tuple[int, int]:
        return timers.idle_limits(self)

    def check_idle(self, now: float | None = None) -> None:
        timers.check_idle(self, now)

    async def _ping_backend(self) -> None:
        await timers.ping_backend(self)

    # ------------------------------------------------------------------ recovery
    def recover(self) -> list[str]:
        """Give every unfinished transaction in the journal a background session."""
        started = time.monotonic()
        calls_payment.rewatch_closed_qr_orders(self)
        pending = self.journal.pending_note()
        refs = []
        found: list[tuple[str | None, ev.Record]] = []
        rows = self.journal.unresolved()
        for i, row in enumerate(rows):
            if row.ref in self.background:
                continue
            state, asked = self.journal.rebuild(row.ref, self.bg_engine)
            note = pending is not None and pending[2] == row.ref and bool(state.escrow)
            plan = recovery.resume(state, asked, note)
            bg = Session(self, self.bg_engine, plan.state, background=True)
            self.background[row.ref] = bg
            log.warning("resuming unfinished transaction %s (%s, paid %d)", row.ref,
                        plan.state.phase.value, plan.state.txn.paid)
            found.append((row.ref, ev.RecoveryStarted(row.ref, plan.state.phase.value,
                                                      plan.state.txn.paid)))
            self.spawn(self._run_background(bg, plan.carry, list(plan.first)))
            if note:
                self.spawn(self._note_verdict(bg))
            refs.append(row.ref)
            if (i + 1) % 100 == 0:
                log.info("recovery: %d of %d transactions resumed", i + 1, len(rows))
        # What the technician reads: one write for all (the sessions run once this returns).
        self.journal.annotate(found)
        if refs:
            log.info("recovery: %d transactions resumed in %.2f s", len(refs),
                     time.monotonic() - started)
        return refs

    async def _note_verdict(self, bg: Session) -> None:
        """No word from the acceptor on a note it was told to stack before the restart:
        book it in doubt (the customer's voucher includes it; the cash count settles it).
        The note's outcome slot is taken once: a credit arriving later adds nothing."""
        await asyncio.sleep(self.NOTE_VERDICT_S)
        s = bg.state
        if not s.escrow or bg.finished:
            return
        e = ev.NoteInDoubt(s.escrow, s.escrow_key, "no_verdict")
        entry = self.journal.enter(None, e)
        if entry.new:
            log.error("ALERT note of %d (%s) on %s: no word from the acceptor, booked in"
                      " doubt", s.escrow, s.escrow_key, entry.ref)
            self.deliver(entry.record)

    async def _run_background(self, bg: Session, carry: tuple[ev.Record, ...],
                              first: list[ev.Record]) -> None:
        ref = bg.state.txn.ref or ""             # an abandoned payment goes idle: no ref then
        for eff in carry:
            before = bg.state
            bg.carry_out(eff)
            if bg.state is not before:
                break               # the engine moved on and asked for what comes next
        for e in first:
            bg.post(e)
        if bg.finished:
            bg.done.set()                        # finished by a pending effect carried out
        await bg.done.wait()
        outcome = bg.state.txn.outcome
        log.info("transaction %s resolved: %s", ref, outcome.value if outcome else "cancelled")
        self.background.pop(ref, None)

    # ------------------------------------------------------------------ effects out
    def perform(self, session: Session, eff: ev.Record) -> None:
        effects.perform(self, session, eff)
