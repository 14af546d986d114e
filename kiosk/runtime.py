"""The imperative shell: journals events, steps the engine, performs its effects.

One asyncio loop runs the UI, the engine and the backends. Drivers that block run on their
own threads and post events with `post_threadsafe`. The order for every event is:

    journal (if it concerns money) -> engine.step -> journal each money effect -> perform it

so nothing irreversible happens before the record that explains it is on disk.

The customer's visit is the main `Session`. Transactions left unfinished (by a crash, or a
top-up still PENDING when the customer leaves) get a background `Session` of their own,
rebuilt from the journal, that works on them until every unit of money is accounted for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from dataclasses import replace
from typing import Any, Callable

from drivers import registry
from drivers.base import DeviceError

from . import events as ev
from . import receipts, vouchers
from .backend.base import TopUpBackend, TopUpStatus
from .catalog import mask_number
from .config import Settings
from .engine import Engine, Outcome, Phase, Policy, State
from .journal import Journal
from .payments.wallet import WalletProvider

log = logging.getLogger("kiosk.runtime")

Listener = Callable[[State], None]

# Effects a background session must not perform: the devices belong to the customer in front.
_DEVICE_EFFECTS = (ev.EnableCash, ev.DisableCash, ev.StackNote, ev.ReturnNote, ev.AbortCard,
                   ev.PrintReceipt, ev.LookupSubscriber, ev.CheckSubscriber, ev.QueryBalance)


class Session:
    """One engine state and the effects it asks for."""

    def __init__(self, rt: "Runtime", engine: Engine, state: State, background: bool) -> None:
        self.rt = rt
        self.engine = engine
        self.state = state
        self.background = background
        self._queue: deque[tuple[ev.Record, bool]] = deque()
        self._busy = False
        self.done = asyncio.Event()

    def post(self, e: ev.Record, journaled: bool = False) -> None:
        self._queue.append((e, journaled))
        if self._busy:
            return                      # the running drain picks it up, in order
        self._busy = True
        try:
            while self._queue:
                self._step(*self._queue.popleft())
        finally:
            self._busy = False

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
                and self.state.phase in (Phase.PAY_CASH, Phase.PAY_QR, Phase.PAY_CARD,
                                         Phase.PAY_VOUCHER))

    def carry_out(self, eff: ev.Record) -> None:
        """Journal a money effect, then perform it: the one place of that rule."""
        if eff.money:
            self.rt.journal.append(self._ref_of(eff), eff)
        self.rt.perform(self, eff)

    def _step(self, e: ev.Record, journaled: bool) -> None:
        if not journaled and self._journals(e):
            self.rt.journal.append(self._ref_of(e), e)
        before = self.state
        self.state, effects = self.engine.step(before, e)
        log.debug("%s: %s -> %s", type(e).__name__, before.phase.value, self.state.phase.value)
        for eff in effects:
            if self.background and isinstance(eff, _DEVICE_EFFECTS):
                continue
            self.carry_out(eff)
        if self.state is not before:
            self.rt.changed(self, before)
        if self.background and self.finished:
            self.done.set()

    @property
    def finished(self) -> bool:
        """A background session is done when its transaction is closed or abandoned (an
        unpaid payment closed as cancelled leaves the state without a reference)."""
        s = self.state
        return s.txn.closed or s.phase is Phase.IDLE or s.txn.ref is None


class Runtime:
    def __init__(self, settings: Settings, devices: dict[str, Any] | None = None) -> None:
        self.settings = settings
        policy = Policy(max_overpay=settings.max_overpay,
                        max_unknown_queries=settings.max_unknown_queries,
                        min_note=min(settings.cash_denominations))
        self.engine = Engine(settings.catalog, policy)
        # Background sessions never give up on a top-up's answer.
        self.bg_engine = Engine(settings.catalog, replace(policy, max_unknown_queries=10**9))
        self.journal = Journal(settings.journal_path, settings.kiosk_id, settings.currency)
        self.devices: dict[str, Any] = dict(devices or {})
        for name, dev in settings.devices.items():
            if name not in self.devices:
                opts = dict(dev.options)
                if name == "cash":
                    opts.setdefault("denominations", settings.cash_denominations)
                    if dev.driver != "simulated":
                        opts.setdefault("currency", settings.currency)
                if name == "backend" and dev.driver != "simulated":
                    opts.setdefault("timeout_s", float(settings.backend_timeout_s))
                if name == "card" and dev.driver != "simulated":
                    opts.setdefault("currency", settings.currency)
                if name == "wallet":
                    opts.setdefault("currency", settings.currency)
                    opts.setdefault("merchant_name", settings.merchant_name)
                    opts.setdefault("merchant_city", settings.merchant_city)
                self.devices[name] = registry.create(name, dev.driver, **opts)
        self.main = Session(self, self.engine, State(), background=False)
        self.background: dict[str, Session] = {}
        self.listeners: list[Listener] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.last_activity = time.monotonic()
        self.warning_until: float | None = None     # "Need more time?" deadline (monotonic)
        self.receipt: receipts.Receipt | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._card_committed: dict[str, ev.CardApproved] = {}   # journaled by the driver hook
        self._box_was_removed = False
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
        if hasattr(self.devices["cash"], "commit"):
            self.devices["cash"].commit = self.post_threadsafe_wait
        if hasattr(self.devices["card"], "commit"):
            self.devices["card"].commit = self._card_commit
        for name in ("sim_reader", "cash", "card", "printer"):
            try:
                await self.devices[name].start(self.post_threadsafe)
            except DeviceError as exc:
                log.error("device %s unavailable at start: %s", name, exc)
                self.post(ev.DeviceStatus(name, False, str(exc)))
        self.spawn(self._tick())
        self.recover()

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for name in ("sim_reader", "cash", "card", "printer"):
            try:
                await self.devices[name].stop()
            except Exception:   # noqa: BLE001 - shutting down: log and go on with the rest
                log.exception("stopping %s", name)
        for name in ("backend", "wallet"):
            close = getattr(self.devices[name], "aclose", None)
            if close is not None:
                await close()                   # HTTP clients: close their connections
        self.journal.close()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ events in
    def post(self, e: ev.Record) -> None:
        """Feed the customer's session (UI and drivers). Loop thread only."""
        if isinstance(e, (ev.NoteEscrowed, ev.NoteCredited, ev.Start, ev.NumberEntered,
                          ev.ConfirmNumber, ev.ChooseProduct, ev.ChoosePayment, ev.Back,
                          ev.ShowReceipt, ev.SimIdentified)):
            self.touched()
        self.main.post(e)

    def post_threadsafe(self, e: ev.Record) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.post, e)

    def post_threadsafe_wait(self, e: ev.Record, timeout: float = 2.0) -> bool:
        """From a device thread: post and wait until the event is journaled and stepped.
        The bill acceptor ACKs vend valid only after this returns True."""
        assert self.loop is not None
        done = concurrent.futures.Future[bool]()

        def deliver() -> None:
            try:
                self.post(e)
                done.set_result(True)
            except BaseException as exc:   # noqa: BLE001 - handed to the waiting thread
                done.set_exception(exc)
        self.loop.call_soon_threadsafe(deliver)
        try:
            return done.result(timeout)
        except Exception:   # noqa: BLE001 - not journaled in time: the caller must not ACK
            log.exception("%s not confirmed", type(e).__name__)
            return False

    def touched(self) -> None:
        """The customer did something: restart the inactivity clock, drop any warning."""
        self.last_activity = time.monotonic()
        if self.warning_until is not None:
            self.warning_until = None
            self._notify()

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def changed(self, session: Session, before: State) -> None:
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
            self.spawn(self._run_background(bg, [ev.TopUpUnknown(s.txn.ref, "pending")]))
        self._notify()

    def _notify(self) -> None:
        for fn in list(self.listeners):
            fn(self.state)

    # ------------------------------------------------------------------ inactivity
    def timeouts(self) -> tuple[int, int]:
        ui = self.settings.ui
        idle = ui.result_timeout_s if self.state.phase in (Phase.RESULT, Phase.RECEIPT) \
            else ui.idle_timeout_s
        return idle, ui.answer_timeout_s

    def check_idle(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if not self.state.timeout_allowed:
            self.last_activity = now
            if self.warning_until is not None:
                self.warning_until = None
                self._notify()
            return
        idle, answer = self.timeouts()
        if self.warning_until is None:
            if now - self.last_activity >= idle:
                self.warning_until = now + answer
                self._notify()
        elif now >= self.warning_until:
            self.warning_until = None
            self.last_activity = now
            self.post(ev.Timeout())

    async def _tick(self) -> None:
        last_ping = 0.0
        while True:
            self.check_idle()
            s = self.state
            if s.phase is Phase.PAY_QR and s.qr_expires_at and time.time() > s.qr_expires_at:
                self.post(ev.QrExpired(s.txn.ref or ""))
            if time.monotonic() - last_ping > 30:
                last_ping = time.monotonic()
                self.spawn(self._ping_backend())
                self._check_cash_box()
            await asyncio.sleep(0.25)

    def _check_cash_box(self) -> None:
        """No cash box in the kiosk (a technician journaled its removal and no insertion
        since): cash stays out of service, whatever the acceptor says."""
        row = self.journal.db.execute(
            "SELECT kind FROM events WHERE kind IN ('CashBoxRemoved', 'CashBoxInserted')"
            " ORDER BY seq DESC LIMIT 1").fetchone()
        removed = row is not None and row[0] == "CashBoxRemoved"
        if removed and self.state.device_ok("cash"):
            log.warning("cash box removed: cash payment off until a box is inserted")
            self.post(ev.DeviceStatus("cash", False, "cash box removed"))
        elif not removed and self._box_was_removed:
            self.post(ev.DeviceStatus("cash", True, "cash box inserted"))
        self._box_was_removed = removed

    async def _ping_backend(self) -> None:
        try:
            ok = await asyncio.wait_for(self.backend.reachable(), 5)
        except Exception:   # noqa: BLE001 - any failure to answer means unreachable
            ok = False
        if ok != self.state.device_ok("backend"):
            self.post(ev.DeviceStatus("backend", ok))

    # ------------------------------------------------------------------ recovery
    def recover(self) -> list[str]:
        """Give every unfinished transaction in the journal a background session."""
        self._rewatch_closed_qr_orders()
        refs = []
        for row in self.journal.unresolved():
            if row.ref in self.background:
                continue
            state, pending = self.journal.rebuild(row.ref, self.bg_engine)
            if state.escrow:
                # A note in escrow at the crash is the acceptor's to decide, not this session's:
                # do not wait for it (if it is stacked after all, it is kept as an OrphanNote).
                state = replace(state, escrow=0)
            bg = Session(self, self.bg_engine, state, background=True)
            self.background[row.ref] = bg
            log.warning("resuming unfinished transaction %s (%s, paid %d)", row.ref,
                        state.phase.value, state.txn.paid)
            self.journal.append(row.ref, ev.RecoveryStarted(row.ref, state.phase.value,
                                                            state.txn.paid))
            self.spawn(self._run_background(bg, self._resume_events(bg, pending)))
            refs.append(row.ref)
        return refs

    def _resume_events(self, bg: Session, pending: list[ev.Record]) -> list[ev.Record]:
        """What to do first for a rebuilt transaction, given the effects it last asked for."""
        s, ref = bg.state, bg.state.txn.ref or ""
        out: list[ev.Record] = []
        for eff in pending:
            if isinstance(eff, ev.TopUp):
                out.append(ev.TopUpUnknown(ref, "restart"))     # ask before any retry
            elif isinstance(eff, (ev.QueryTopUp, ev.IssueVoucher, ev.ReverseCard,
                                  ev.CloseTransaction, ev.SetVoucherStatus)):
                bg.carry_out(eff)
                return out
        if out:
            return out
        if s.phase in (Phase.PAY_CASH, Phase.PAY_VOUCHER):
            return [ev.Timeout()]
        if s.phase is Phase.PAY_QR:
            return [ev.Cancel()]
        if s.phase is Phase.PAY_CARD:
            return [ev.CardDeclined(ref, "restart")]
        if s.phase in (Phase.FULFILLING, Phase.RESULT):
            return [ev.TopUpUnknown(ref, "restart")]
        return []

    async def _run_background(self, bg: Session, first: list[ev.Record]) -> None:
        ref = bg.state.txn.ref or ""             # an abandoned payment goes idle: no ref then
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
        d = self.devices
        match eff:
            case ev.AllocateReference():
                ref = self.journal.open_transaction(session.state.txn)
                session.post(ev.ReferenceAllocated(ref), journaled=True)
            case ev.LookupSubscriber(iccid=iccid):
                self.spawn(self._lookup(session, iccid))
            case ev.CheckSubscriber(msisdn=msisdn, operator=op):
                self.spawn(self._check_subscriber(session, msisdn, op))
            case ev.QueryBalance(ref=ref, msisdn=msisdn, operator=op):
                self.spawn(self._balance_after(session, ref, msisdn, op))
            case ev.EnableCash():
                d["cash"].enable()
            case ev.DisableCash():
                d["cash"].disable()
            case ev.StackNote(value=v):
                d["cash"].stack(v)
            case ev.ReturnNote(value=v):
                d["cash"].return_note(v)
            case ev.CreateQrOrder(ref=ref, amount=a):
                self.spawn(self._qr_order(session, ref, a))
            case ev.CloseQrOrder(ref=ref):
                self.qr_closing.add(ref)
                self.spawn(self._qr_close(session, ref))
            case ev.AuthoriseCard(ref=ref, amount=a):
                self.spawn(self._card_authorise(session, ref, a))
            case ev.AbortCard():
                self.spawn(d["card"].abort())
            case ev.ReverseCard(ref=ref, amount=a, receipt_no=rno):
                self.spawn(self._card_reverse(session, ref, a, rno))
            case ev.TopUp():
                self.spawn(self._topup(session, eff))
            case ev.QueryTopUp(ref=ref, attempt=n):
                self.spawn(self._query(session, ref, n))
            case ev.IssueVoucher(ref=ref, amount=a, held=held):
                session.post(ev.VoucherIssued(ref, vouchers.new_code(), a, held,
                                              self._voucher_expiry()))
            case ev.RedeemVoucher(ref=ref, code=code):
                answer = self.journal.redeem_voucher(ref, code, self._today())
                if isinstance(answer, ev.VoucherRedeemed):
                    log.info("voucher ...%s redeemed on %s: %d", code[-4:], ref, answer.amount)
                session.post(answer, journaled=True)
            case ev.PrintReceipt(ref=ref):
                self.spawn(self._print(session, ref))
            case ev.LatePayment(ref=ref, amount=a, source=src):
                # The customer paid after leaving the payment screen: the money is kept as
                # a voucher on that reference, for the technician to hand over or refund.
                if self._seen_payment(ref, src):
                    log.warning("payment %s on %s reported again: already accounted for",
                                src, ref)
                    return
                code = vouchers.new_code()
                log.warning("late payment %s on %s (%s): voucher ...%s", a, ref, src, code[-4:])
                self.journal.append(ref, ev.VoucherIssued(ref, code, a,
                                                          expires=self._voucher_expiry()))
            case ev.CloseTransaction(ref=ref, outcome=o):
                log.info("transaction %s closed: %s", ref, o)
            case ev.OrphanNote(value=v):
                log.warning("note of %d credited with no open transaction", v)
            case ev.SetVoucherStatus():
                pass            # the journal append already applied it

    def _today(self) -> str:
        from datetime import datetime
        from zoneinfo import ZoneInfo
        return datetime.now(ZoneInfo(self.settings.timezone)).date().isoformat()

    def _voucher_expiry(self) -> str:
        """The last day a voucher issued now can be used (local date)."""
        from datetime import date, timedelta
        days = self.settings.voucher_expiry_days
        return (date.fromisoformat(self._today()) + timedelta(days=days)).isoformat()

    def _seen_payment(self, ref: str, source: str) -> bool:
        """Has this wallet payment (provider reference) been journaled before this report?
        The poller and the order close can both report one payment."""
        kind, _, provider_ref = source.partition(":")
        if kind != "qr":
            return False
        reports = [e for e in self.journal.events(ref)
                   if e.kind == "QrPaid" and e.data.get("provider_ref") == provider_ref]
        return len(reports) > 1

    async def _lookup(self, session: Session, iccid: str) -> None:
        try:
            msisdn = await asyncio.wait_for(self.backend.lookup_subscriber(iccid),
                                            self.settings.backend_timeout_s)
        except Exception as exc:    # noqa: BLE001 - any failure: the customer types instead
            log.warning("subscriber lookup failed: %s", exc)
            msisdn = None
        if msisdn:
            log.info("SIM identified as %s", mask_number(msisdn, "*"))
            session.post(ev.SubscriberFound(iccid, msisdn))
        else:
            session.post(ev.SubscriberNotFound(iccid))

    async def _check_subscriber(self, session: Session, msisdn: str, operator: str) -> None:
        """Before any money: the operator as the provider routes the number, what it sells
        this number now, and the balance where the operator offers an inquiry. Any failure
        to ask means payment is not offered ("top-up temporarily unavailable")."""
        catalog = self.settings.catalog
        international = catalog.international(msisdn)
        timeout = self.settings.backend_timeout_s
        try:
            detected = await asyncio.wait_for(self.backend.detect_operator(international),
                                              timeout)
            if detected == "" or (detected is not None and detected not in
                                  {o.id for o in catalog.operators}):
                session.post(ev.SubscriberCheckFailed(msisdn, "unknown_operator"))
                return
            if detected and detected != operator:
                log.info("number %s is with %s, not %s (ported)", mask_number(msisdn, "*"),
                         detected, operator)
                operator = detected
            offers = await asyncio.wait_for(self.backend.offers(operator), timeout)
        except Exception as exc:    # noqa: BLE001 - cannot ask: do not take money
            log.warning("number check failed: %s", exc or type(exc).__name__)
            session.post(ev.SubscriberCheckFailed(msisdn, "unavailable"))
            return
        from .backend.base import offered as offered_ids
        products = catalog.offers(operator)
        ids = offered_ids(products, offers)
        missing = [p.id for p in products if p.id not in ids]
        if missing:
            log.warning("provider does not sell %s now: not offered", ", ".join(missing))
        balance = await self._balance(international, operator)
        session.post(ev.SubscriberChecked(
            msisdn, operator, ids, balance.airtime if balance else None,
            balance.data_mb if balance else None, balance.valid_until if balance else ""))

    async def _balance(self, international: str, operator: str) -> Any:
        try:
            if not self.settings.catalog.operator(operator).has_balance_inquiry:
                return None
            return await asyncio.wait_for(self.backend.balance(international, operator),
                                          min(self.settings.backend_timeout_s, 5))
        except Exception as exc:    # noqa: BLE001 - a balance is a courtesy: never blocks a sale
            log.info("balance inquiry failed: %s", exc or type(exc).__name__)
            return None

    async def _balance_after(self, session: Session, ref: str, msisdn: str,
                             operator: str) -> None:
        b = await self._balance(self.settings.catalog.international(msisdn), operator)
        if b is not None:
            session.post(ev.BalanceReported(ref, b.airtime, b.data_mb, b.valid_until))

    async def _topup(self, session: Session, eff: ev.TopUp) -> None:
        international = self.settings.catalog.international(eff.msisdn)
        try:
            kind = self.settings.catalog.product(eff.product_id).kind.value
        except KeyError:
            kind = "airtime"
        try:
            answer = await asyncio.wait_for(
                self.backend.topup(eff.ref, international, eff.operator, eff.product_id,
                                   eff.amount, kind=kind), self.settings.backend_timeout_s)
        except Exception as exc:    # noqa: BLE001 - timeout, drop, 5xx: never a failure
            log.warning("top-up %s: no final answer (%s)", eff.ref, type(exc).__name__)
            session.post(ev.TopUpUnknown(eff.ref, type(exc).__name__))
            return
        session.post(self._answer_event(eff.ref, answer))

    def _answer_event(self, ref: str, answer: Any) -> ev.Record:
        if answer.status is TopUpStatus.SUCCESSFUL:
            return ev.TopUpSucceeded(ref, answer.operator_ref)
        if answer.status is TopUpStatus.FAILED:
            return ev.TopUpFailed(ref, answer.reason or "backend.rejected")
        if answer.status is TopUpStatus.NOT_FOUND:
            return ev.TopUpFailed(ref, "backend.not_received")
        return ev.TopUpUnknown(ref, "status unknown")

    async def _query(self, session: Session, ref: str, attempt: int) -> None:
        base = self.settings.query_interval_s
        wait = base * min(2 ** max(attempt - 1, 0), 30) if session.background else base
        await asyncio.sleep(wait)
        try:
            answer = await asyncio.wait_for(self.backend.status(ref),
                                            self.settings.backend_timeout_s)
        except Exception as exc:    # noqa: BLE001
            log.warning("status of %s: no answer (%s)", ref, type(exc).__name__)
            session.post(ev.TopUpUnknown(ref, type(exc).__name__))
            return
        session.post(self._answer_event(ref, answer))

    async def _qr_order(self, session: Session, ref: str, amount: int) -> None:
        try:
            order = await asyncio.wait_for(
                self.wallet.create_order(ref, amount, self.settings.qr_expiry_s),
                self.settings.backend_timeout_s)
        except Exception as exc:    # noqa: BLE001
            log.warning("QR order %s failed: %s", ref, exc)
            session.post(ev.QrOrderFailed(ref, "unavailable"))
            return
        session.post(ev.QrOrderCreated(ref, order.payload, order.expires_at))
        while session.state.txn.ref == ref and session.state.phase is Phase.PAY_QR:
            await asyncio.sleep(self.QR_POLL_S)
            try:
                st = await self.wallet.status(ref)
            except Exception as exc:    # noqa: BLE001 - keep polling until expiry
                log.warning("QR status %s: %s", ref, exc)
                continue
            if st.state == "paid":
                session.post(ev.QrPaid(ref, st.amount, st.provider_ref))
                return
            if st.state == "expired":
                session.post(ev.QrExpired(ref))
                return
            if st.state in ("declined", "closed"):
                session.post(ev.QrOrderFailed(ref, "declined"))
                return

    # After a QR order is closed (cancel, expiry), a payment the customer's wallet had already
    # started can still land: the order is watched this long, then given up.
    LATE_WATCH_S = 600.0
    LATE_POLL_S = 2.0                # first wait between looks; grows to 30 s
    QR_POLL_S = 1.0                  # an open QR order's status is asked this often

    async def _qr_close(self, session: Session, ref: str) -> None:
        try:
            try:
                st = await asyncio.wait_for(self.wallet.close(ref),
                                            self.settings.backend_timeout_s)
            except Exception as exc:    # noqa: BLE001 - unknown: the watch below asks again
                log.error("closing QR order %s failed: %s", ref, exc)
                st = None
            if st is not None and st.state == "paid":
                session.post(ev.QrPaid(ref, st.amount, st.provider_ref))
                return
        finally:
            self.qr_closing.discard(ref)
        self.spawn(self._qr_watch_late(session, ref))

    def _rewatch_closed_qr_orders(self) -> None:
        """After a restart: QR orders closed within the watch window, with nothing paid,
        are watched again (the watch that was running died with the process)."""
        since = time.time() - self.LATE_WATCH_S
        rows = self.journal.db.execute(
            "SELECT ref FROM transactions WHERE method='qr' AND status='closed' AND paid=0"
            " AND closed_ts > ? AND ref NOT IN (SELECT ref FROM events WHERE"
            " kind='LatePayment' AND ref IS NOT NULL)", (since,)).fetchall()
        for (ref,) in rows:
            self.spawn(self._qr_watch_late(self.main, ref))

    async def _qr_watch_late(self, session: Session, ref: str) -> None:
        """A payment arriving after cancel or expiry is never lost: it is reported as QrPaid,
        which the engine turns into a LatePayment voucher (or, on the payment screen, a
        credit)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.LATE_WATCH_S
        wait = self.LATE_POLL_S
        while loop.time() < deadline:
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, 30.0)
            try:
                st = await asyncio.wait_for(self.wallet.status(ref),
                                            self.settings.backend_timeout_s)
            except Exception:   # noqa: BLE001 - keep watching
                continue
            if st.state == "paid":
                log.warning("QR order %s paid after it was closed", ref)
                session.post(ev.QrPaid(ref, st.amount, st.provider_ref))
                return
            if st.state == "declined":
                return

    def _card_commit(self, ref: str, r: Any) -> bool:
        """From the card driver's thread, before it confirms an approval to the terminal:
        journal CardApproved durably, and nothing else. The engine is stepped with it only
        after the terminal has the confirmation (in `_card_authorise`), so nothing that
        depends on the payment (the top-up) can happen before it is final at the terminal;
        a terminal reverses a result the kiosk never confirmed."""
        assert self.loop is not None
        e = ev.CardApproved(ref, r.amount, r.auth_code, r.trace, r.receipt_no, r.card_name,
                            r.terminal_id)
        done = concurrent.futures.Future[bool]()

        def write() -> None:
            try:
                self.journal.append(ref, e)
                self._card_committed[ref] = e
                done.set_result(True)
            except BaseException as exc:   # noqa: BLE001 - handed to the waiting thread
                done.set_exception(exc)
        self.loop.call_soon_threadsafe(write)
        try:
            return done.result(2.0)
        except Exception:   # noqa: BLE001 - not journaled: the driver refuses the approval
            log.exception("CardApproved for %s not journaled", ref)
            return False

    REVERSE_TRIES = 8
    REVERSE_WAIT_S = 1.0
    CARD_RESOLVE_TRIES = 10
    CARD_RESOLVE_WAIT_S = 2.0

    async def _card_authorise(self, session: Session, ref: str, amount: int) -> None:
        card = self.devices["card"]
        try:
            r = await card.authorise(ref, amount)
        except DeviceError as exc:
            log.error("card terminal: %s", exc)
            session.post(ev.CardDeclined(ref, "unavailable"))
            return
        committed = self._card_committed.pop(ref, None)
        if committed is not None:
            # The approval was journaled and confirmed to the terminal: it stands, whatever
            # happened on the line after that.
            session.post(committed, journaled=True)
            if r.lines:
                session.post(ev.CardReceipt(ref, tuple(r.lines)))
            return
        if r.reason == "unknown":
            # Sent, no final answer: ask the terminal what its last transaction was.
            log.warning("card payment %s: no final answer, asking the terminal", ref)
            for _ in range(self.CARD_RESOLVE_TRIES):
                await asyncio.sleep(self.CARD_RESOLVE_WAIT_S)
                try:
                    found = await card.last_result(ref, amount)
                except DeviceError:
                    found = None
                if found is not None:
                    r = found if found.approved else replace(found, reason="timeout")
                    break
            else:
                log.error("ALERT card payment %s: outcome unknown after %d enquiries; the "
                          "terminal reverses an unconfirmed payment, check its journal",
                          ref, self.CARD_RESOLVE_TRIES)
                r = replace(r, reason="timeout")
        if r.approved:
            session.post(ev.CardApproved(ref, r.amount, r.auth_code, r.trace, r.receipt_no,
                                         r.card_name, r.terminal_id))
            if r.lines:
                session.post(ev.CardReceipt(ref, tuple(r.lines)))
        else:
            session.post(ev.CardDeclined(ref, r.reason or "declined", r.result_code))

    async def _card_reverse(self, session: Session, ref: str, amount: int,
                            receipt_no: str) -> None:
        ok = False
        for attempt in range(self.REVERSE_TRIES):
            try:
                r = await self.devices["card"].reverse(ref, amount, receipt_no)
            except DeviceError as exc:
                log.error("card reversal %s: %s", ref, exc)
                r = None
            if r is not None and (r.approved or r.reason not in ("offline", "unknown")):
                ok = r.approved
                break
            # The terminal is not there or gave no final answer: ask again, never give up
            # the customer's money on a transient fault.
            await asyncio.sleep(self.REVERSE_WAIT_S * (attempt + 1))
        if not ok:
            log.error("ALERT card reversal of %s (receipt %s) refused: a voucher is issued; "
                      "reverse it at the terminal or refund the customer", ref,
                      receipt_no or "?")
        session.post(ev.CardReversed(ref) if ok else ev.CardReversalFailed(ref, "refused"))

    async def _print(self, session: Session, ref: str) -> None:
        s = self.settings
        self.receipt = receipts.build(session.state.txn, s.catalog, kiosk_id=s.kiosk_id,
                                      site=s.site, support=s.support, tz=s.timezone,
                                      now=time.time())
        self._notify()
        try:
            await self.devices["printer"].print_receipt(self.receipt.lines, self.receipt.qr)
        except DeviceError as exc:
            # The top-up stands; the customer gets the receipt on screen (with its QR).
            log.error("ALERT printer: receipt %s not printed: %s", ref, exc)
            session.post(ev.DeviceStatus("printer", False, str(exc)))
            session.post(ev.PrinterFailed(ref, str(exc)))
            return
        session.post(ev.ReceiptPrinted(ref))
