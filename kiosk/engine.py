"""The transaction state machine: pure, synchronous, no I/O.

    Engine(catalog, policy).step(state, event) -> (new state, [effects])

Every money rule of the kiosk lives here; the shell (kiosk.runtime) journals events and
performs effects. A customer's visit goes

    IDLE -> IDENTIFY [-> LOOKUP] -> CONFIRM_NUMBER -> CHOOSE_PRODUCT -> CHOOSE_PAYMENT
         -> PAY_CASH | PAY_QR | PAY_CARD -> FULFILLING -> RESULT [-> RECEIPT] -> IDLE

A transaction gets its reference when payment starts (AllocateReference; the shell journals
it before any money can move). From then on it is closed (CloseTransaction) only when every
unit of money taken is accounted for: paid = credited + voucher + refunded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from . import events as ev
from .backend.base import Balance
from .catalog import Catalog, NumberCheck


class Phase(str, Enum):
    IDLE = "idle"
    IDENTIFY = "identify"
    LOOKUP = "lookup"
    CONFIRM_NUMBER = "confirm_number"
    CHOOSE_PRODUCT = "choose_product"
    CHOOSE_PAYMENT = "choose_payment"
    PAY_CASH = "pay_cash"
    PAY_QR = "pay_qr"
    PAY_CARD = "pay_card"
    PAY_VOUCHER = "pay_voucher"
    FULFILLING = "fulfilling"
    RESULT = "result"
    RECEIPT = "receipt"


class Outcome(str, Enum):
    SUCCESS = "success"                  # topped up (maybe with a voucher for change)
    FAILED_VOUCHER = "failed_voucher"    # top-up failed, money kept as a voucher
    FAILED_REFUNDED = "failed_refunded"  # top-up failed, card payment reversed
    CANCELLED = "cancelled"              # nothing paid, or paid money turned into a voucher
    PENDING = "pending"                  # no final answer yet: keep the receipt


class EngineError(Exception):
    """An event that makes no sense in the current state (a bug in the shell, not in input)."""


METHODS = ("cash", "qr", "card")
PAYING = ("pay_cash", "pay_qr", "pay_card", "pay_voucher")


@dataclass(frozen=True)
class Policy:
    max_overpay: int = 0           # minor units a note may exceed what is still to pay
    min_note: int = 0              # smallest accepted note: change below it is unavoidable
    max_unknown_queries: int = 5   # status look-ups before the customer gets a PENDING receipt


@dataclass(frozen=True)
class Txn:
    """One customer's purchase. Money fields are minor units of the catalog currency."""
    msisdn: str = ""
    operator: str = ""
    number_source: str = "typed"   # "typed" | "sim"
    operator_chosen: bool = False  # the customer corrected the network
    product_id: str = ""
    amount: int = 0                # price = face value to credit
    method: str = ""
    ref: str | None = None
    paid: int = 0
    notes: tuple[int, ...] = ()
    credited: int = 0
    voucher: int = 0
    voucher_code: str = ""
    voucher_held: bool = False
    refunded: int = 0
    payment_ref: str = ""
    card_receipt_no: str = ""      # the terminal's receipt number (what a reversal names)
    payment_lines: tuple[str, ...] = ()   # the card terminal's receipt lines
    vouchers_in: tuple[tuple[str, int], ...] = ()   # (code, amount) redeemed as payment
    operator_ref: str = ""
    unknown_queries: int = 0
    outcome: Outcome | None = None
    failure: str = ""              # message key for the result screen
    cancel_requested: bool = False
    closed: bool = False

    @property
    def remaining(self) -> int:
        return max(self.amount - self.paid, 0)

    @property
    def balanced(self) -> bool:
        return self.paid == self.credited + self.voucher + self.refunded


@dataclass(frozen=True)
class State:
    phase: Phase = Phase.IDLE
    txn: Txn = field(default_factory=Txn)
    typed: str = ""                        # digits typed so far (kept when going back)
    lang: str = ""                         # the customer's language ("": the default)
    check: NumberCheck | None = None       # last number check
    notice: str = ""                       # message key for the current screen
    iccid: str = ""
    sim_present: bool = False
    escrow: int = 0                        # note value held in escrow, 0 if none
    escrow_key: str = ""                   # the acceptor's key of that note
    qr_payload: str = ""
    qr_expires_at: float = 0.0
    receipt_printed: bool | None = None
    devices: tuple[tuple[str, bool], ...] = (
        ("backend", True), ("cash", True), ("qr", True), ("card", True), ("printer", True),
        ("sim_reader", True))
    orphan_total: int = 0
    card_text: str = ""                    # the card terminal's message ("Enter PIN")
    offered: tuple[str, ...] | None = None  # products the provider sells this number now
                                           # (None: still asking)
    balance: Balance | None = None         # before the top-up, where the operator tells
    balance_after: Balance | None = None   # after a successful top-up

    def device_ok(self, name: str) -> bool:
        return dict(self.devices).get(name, False)

    @property
    def methods(self) -> tuple[str, ...]:
        """Payment methods the customer may choose now."""
        if not self.device_ok("backend") or dict(self.devices).get("journal") is False:
            return ()           # no sale that could not be journaled (kiosk/journal_health)
        # A voucher needs no device: the journal is the voucher's bank.
        return tuple(m for m in METHODS if self.device_ok(m)) + ("voucher",)

    @property
    def can_sell(self) -> bool:
        return any(m in METHODS for m in self.methods)

    @property
    def timeout_allowed(self) -> bool:
        """May the inactivity timer end this visit? Never while money is in flight."""
        if self.phase in (Phase.IDLE, Phase.FULFILLING, Phase.PAY_CARD, Phase.PAY_QR):
            # PAY_QR: the customer is busy with the phone; the order's own expiry ends it.
            return False
        if self.phase is Phase.PAY_CASH and self.escrow:
            return False
        return True


Result = tuple[State, list[ev.Record]]


class Engine:
    def __init__(self, catalog: Catalog, policy: Policy | None = None) -> None:
        self.catalog = catalog
        self.policy = policy or Policy()

    # ------------------------------------------------------------------ entry point
    def step(self, s: State, e: ev.Record) -> Result:
        # Events that mean the same in every phase.
        match e:
            case ev.ChooseLanguage(lang=lang):
                return replace(s, lang=lang), []
            case ev.DeviceStatus(device=d, ok=ok):
                devices = tuple((n, ok if n == d else v) for n, v in s.devices)
                if d not in dict(s.devices):
                    devices += ((d, ok),)
                return replace(s, devices=devices), []
            case ev.SimRemoved():
                s = replace(s, sim_present=False, iccid="")
                if s.phase is Phase.LOOKUP:
                    return replace(s, phase=Phase.IDENTIFY, notice="sim.removed"), []
                return s, []
            case ev.SimUnreadable(reason=reason):
                notice = f"sim.{reason}"
                if s.phase in (Phase.IDLE, Phase.RESULT, Phase.RECEIPT):
                    # A card in the slot starts a visit, even one we cannot read.
                    s = replace(self._idle(s), phase=Phase.IDENTIFY)
                if s.phase in (Phase.IDENTIFY, Phase.LOOKUP):
                    return replace(s, phase=Phase.IDENTIFY, notice=notice, sim_present=True,
                                   iccid=""), []
                return replace(s, sim_present=True), []
            case ev.ReceiptPrinted(ref=ref) if ref == s.txn.ref:
                return replace(s, receipt_printed=True), []
            case ev.BalanceReported(ref=ref) if ref == s.txn.ref:
                return replace(s, balance_after=Balance(e.airtime, e.data_mb,
                                                        e.valid_until)), []
            case ev.PrinterFailed(ref=ref) if ref == s.txn.ref:
                return replace(s, receipt_printed=False), []
            case ev.NoteEscrowed(value=v, key=k) if s.phase is not Phase.PAY_CASH:
                return s, [ev.ReturnNote(v, "not_paying", k)]
            case ev.NoteCredited(value=v, key=k, ref=r) | ev.NoteInDoubt(value=v, key=k, ref=r) \
                    if k and r != s.txn.ref:
                # The gate booked this note to another transaction, or to none (an orphan).
                if r is None:
                    return self._orphan(s, v)
                return s, []
            case ev.NoteCredited(value=v) | ev.NoteInDoubt(value=v) \
                    if s.phase is not Phase.PAY_CASH:
                return self._late_note(s, v)
            case ev.NoteReturned() | ev.NoteRejected() if s.phase is not Phase.PAY_CASH:
                return replace(s, escrow=0, escrow_key=""), []
            case ev.QrPaid(ref=ref, amount=a, provider_ref=p) if not (
                    s.phase is Phase.PAY_QR and ref == s.txn.ref):
                return s, [ev.LatePayment(ref, a, f"qr:{p}")]
            case ev.CardApproved(ref=ref, amount=a, receipt_no=rno) if not (
                    s.phase is Phase.PAY_CARD and ref == s.txn.ref):
                # An approval nobody waits for any more: give the money back at once.
                return s, [ev.ReverseCard(ref, a, rno)]
            case ev.CardReceipt(ref=ref, lines=lines):
                if ref == s.txn.ref:
                    return replace(s, txn=replace(s.txn, payment_lines=tuple(lines))), []
                return s, []
            case ev.CardText(text=text):
                return (replace(s, card_text=text), []) if s.phase is Phase.PAY_CARD else (s, [])
            case ev.ReferenceAllocated(ref=ref) if not (
                    s.phase.value in PAYING and s.txn.ref is None):
                # The customer left before the reference came back: close it untouched.
                return s, [ev.CloseTransaction(ref, Outcome.CANCELLED.value, 0, 0, 0, 0)]
        handler = getattr(self, f"_on_{s.phase.value}")
        return handler(s, e)

    # ------------------------------------------------------------------ helpers
    def _ignore(self, s: State, e: ev.Record) -> Result:
        return s, []

    def _idle(self, s: State) -> State:
        return State(devices=s.devices, sim_present=s.sim_present, iccid=s.iccid,
                     orphan_total=s.orphan_total)

    def _late_note(self, s: State, v: int) -> Result:
        t = s.txn
        if (t.ref and not t.closed and t.method in ("cash", "voucher")
                and s.phase in (Phase.FULFILLING, Phase.CHOOSE_PAYMENT)):
            # Stacked after cash was disabled: it belongs to this customer, ends as change.
            # (Never to a card or QR payment: a card reversal must not give back cash.)
            t = replace(t, paid=t.paid + v, notes=t.notes + (v,))
            return replace(s, txn=t, escrow=0, escrow_key=""), []
        return self._orphan(s, v)

    def _orphan(self, s: State, v: int) -> Result:
        return replace(s, orphan_total=s.orphan_total + v, escrow=0,
                       escrow_key=""), [ev.OrphanNote(v)]

    def _sim_lookup(self, s: State, iccid: str) -> Result:
        s = replace(s, phase=Phase.LOOKUP, iccid=iccid, sim_present=True, notice="")
        return s, [ev.LookupSubscriber(iccid)]

    def _confirm(self, s: State, check: NumberCheck, source: str) -> Result:
        txn = replace(s.txn, msisdn=check.national, operator=check.operator or "",
                      number_source=source)
        return replace(s, phase=Phase.CONFIRM_NUMBER, txn=txn, check=check, notice=""), []

    def _close(self, s: State, outcome: Outcome) -> Result:
        t = s.txn
        if not t.balanced:
            raise EngineError(f"{t.ref}: cannot close, paid {t.paid} != credited {t.credited}"
                              f" + voucher {t.voucher} + refunded {t.refunded}")
        t = replace(t, outcome=outcome, closed=True)
        s = replace(s, txn=t, phase=Phase.RESULT, receipt_printed=None)
        effects: list[ev.Record] = []
        if t.ref:
            effects.append(ev.CloseTransaction(t.ref, outcome.value, t.paid, t.credited,
                                               t.voucher, t.refunded))
            if t.paid:
                effects.append(ev.PrintReceipt(t.ref))
            if outcome is Outcome.SUCCESS and self._has_balance_inquiry(t.operator):
                effects.append(ev.QueryBalance(t.ref, t.msisdn, t.operator))
        return s, effects

    def note_fits(self, t: Txn, value: int) -> bool:
        """A note of `value` is taken now: it overpays by less than the smallest note (the
        rest as a voucher) or the configured overpay, or an any-amount product takes it."""
        return (value - t.remaining <= max(self.policy.max_overpay, self.policy.min_note - 1)
                or self._range_takes(t, t.paid + value))

    def _range_takes(self, t: Txn, total: int) -> bool:
        """A RANGE product (any amount) can top up `total` instead of the chosen amount."""
        try:
            p = self.catalog.product(t.product_id)
        except KeyError:
            return False
        return p.is_range and t.method == "cash" and p.accepts(total)

    def _has_balance_inquiry(self, operator: str) -> bool:
        try:
            return self.catalog.operator(operator).has_balance_inquiry
        except KeyError:
            return False

    def _abandon_unpaid(self, s: State, back_to: Phase | None, notice: str = "") -> Result:
        """Leave a payment before any money moved: close its reference as cancelled."""
        t = s.txn
        effects: list[ev.Record] = []
        if t.ref:
            effects.append(ev.CloseTransaction(t.ref, Outcome.CANCELLED.value, 0, 0, 0, 0))
        if back_to is None:
            return self._idle(s), effects
        t = replace(t, ref=None, method="", paid=0, notes=(), cancel_requested=False)
        return replace(s, phase=back_to, txn=t, notice=notice, qr_payload="",
                       qr_expires_at=0.0, escrow=0, escrow_key="", card_text=""), effects

    def _to_voucher(self, s: State, reason: str) -> Result:
        """Turn everything paid and not yet accounted for into a voucher."""
        t = s.txn
        owed = t.paid - t.credited - t.voucher - t.refunded
        s = replace(s, phase=Phase.FULFILLING, escrow=0, escrow_key="",
                    txn=replace(t, failure=reason))
        return s, [ev.IssueVoucher(t.ref or "", owed, reason)]

    def _fulfil(self, s: State) -> Result:
        t = s.txn
        s = replace(s, phase=Phase.FULFILLING, notice="", escrow=0, escrow_key="")
        return s, [ev.TopUp(t.ref or "", t.msisdn, t.operator, t.product_id, t.amount)]

    # ------------------------------------------------------------------ phases
    def _on_idle(self, s: State, e: ev.Record) -> Result:
        match e:
            case ev.Start():
                return replace(self._idle(s), phase=Phase.IDENTIFY), []
            case ev.SimIdentified(iccid=iccid):
                return self._sim_lookup(self._idle(s), iccid)
        return s, []

    def _on_identify(self, s: State, e: ev.Record) -> Result:
        match e:
            case ev.NumberEntered(raw=raw):
                check = self.catalog.check_number(raw)
                s = replace(s, typed=check.national, check=check)
                if check.error is not None:
                    return replace(s, notice=f"number.{check.error.value}"), []
                return self._confirm(s, check, "typed")
            case ev.SimIdentified(iccid=iccid):
                return self._sim_lookup(s, iccid)
            case ev.Cancel() | ev.Timeout() | ev.Back():
                return self._idle(s), []
        return s, []

    def _on_lookup(self, s: State, e: ev.Record) -> Result:
        match e:
            case ev.SubscriberFound(iccid=iccid, msisdn=msisdn) if iccid == s.iccid:
                check = self.catalog.check_number(msisdn)
                if not check.ok:
                    return replace(s, phase=Phase.IDENTIFY, notice="sim.unknown"), []
                return self._confirm(s, check, "sim")
            case ev.SubscriberNotFound(iccid=iccid) if iccid == s.iccid:
                return replace(s, phase=Phase.IDENTIFY, notice="sim.unknown"), []
            case ev.Cancel() | ev.Timeout():
                return self._idle(s), []
            case ev.Back():
                return replace(s, phase=Phase.IDENTIFY, notice=""), []
        return s, []

    def _on_confirm_number(self, s: State, e: ev.Record) -> Result:
        match e:
            case ev.ConfirmNumber(yes=True):
                # Before any money: ask the provider who the operator is, what it sells this
                # number now, and whether it is reachable at all.
                s = replace(s, phase=Phase.CHOOSE_PRODUCT, notice="", offered=None,
                            balance=None, balance_after=None)
                return s, [ev.CheckSubscriber(s.txn.msisdn, s.txn.operator)]
            case ev.ConfirmNumber(yes=False) | ev.Back():
                keep = s.typed if s.txn.number_source == "typed" else ""
                return replace(s, phase=Phase.IDENTIFY, typed=keep, txn=Txn(), notice=""), []
            case ev.Cancel() | ev.Timeout():
                return self._idle(s), []
        return s, []

    def _on_choose_product(self, s: State, e: ev.Record) -> Result:
        match e:
            case ev.SubscriberChecked(msisdn=n, operator=op, offered=offered) \
                    if n == s.txn.msisdn and s.offered is None and (
                        op == s.txn.operator or not s.txn.operator_chosen):
                balance = None
                if (e.airtime, e.data_mb, e.valid_until) != (None, None, ""):
                    balance = Balance(e.airtime, e.data_mb, e.valid_until)
                return replace(s, txn=replace(s.txn, operator=op), offered=tuple(offered),
                               balance=balance), []
            case ev.SubscriberCheckFailed(msisdn=n, reason=reason) \
                    if n == s.txn.msisdn and s.offered is None:
                if reason == "unavailable":
                    s = self._with_device(s, "backend", False)
                return replace(s, offered=(), notice=f"backend.{reason}"), []
            case ev.ChooseOperator(operator=op) if op != s.txn.operator:
                if op not in {o.id for o in self.catalog.operators}:
                    return s, []
                txn = replace(s.txn, operator=op, operator_chosen=True)
                s = replace(s, txn=txn, offered=None, balance=None, notice="")
                return s, [ev.CheckSubscriber(txn.msisdn, op, chosen=True)]
            case ev.ChooseProduct(product_id=pid, amount=amount, today=today):
                try:
                    p = self.catalog.product(pid)
                except KeyError:
                    return replace(s, notice="product.unknown"), []
                if s.offered is None:
                    return replace(s, notice="product.checking"), []
                if p.operator != s.txn.operator:
                    return replace(s, notice="product.wrong_operator"), []
                if pid not in s.offered:
                    return replace(s, notice="product.unavailable"), []
                if not p.on_sale(today):
                    return replace(s, notice="product.expired"), []
                if not p.accepts(amount):
                    return replace(s, notice="product.bad_amount"), []
                txn = replace(s.txn, product_id=pid, amount=amount)
                return replace(s, phase=Phase.CHOOSE_PAYMENT, txn=txn, notice=""), []
            case ev.Back():
                return replace(s, phase=Phase.CONFIRM_NUMBER, notice=""), []
            case ev.Cancel() | ev.Timeout():
                return self._idle(s), []
        return s, []

    def _on_choose_payment(self, s: State, e: ev.Record) -> Result:
        match e:
            case ev.ChoosePayment(method=m):
                if m not in s.methods:
                    return replace(s, notice=f"{m}.unavailable"), []
                phase = {"cash": Phase.PAY_CASH, "qr": Phase.PAY_QR, "card": Phase.PAY_CARD,
                         "voucher": Phase.PAY_VOUCHER}[m]
                txn = replace(s.txn, method=m, ref=None)
                return replace(s, phase=phase, txn=txn, notice=""), [ev.AllocateReference()]
            case ev.Back():
                return replace(s, phase=Phase.CHOOSE_PRODUCT, notice=""), []
            case ev.Cancel() | ev.Timeout():
                return self._idle(s), []
        return s, []

    def _on_pay_cash(self, s: State, e: ev.Record) -> Result:
        t = s.txn
        match e:
            case ev.ReferenceAllocated(ref=ref) if t.ref is None:
                return replace(s, txn=replace(t, ref=ref)), [ev.EnableCash()]
            case ev.NoteEscrowed(value=v, key=k):
                if t.ref is None or t.cancel_requested or s.escrow:
                    return s, [ev.ReturnNote(v, "not_paying", k)]
                if not s.device_ok("cash") or not s.methods:
                    # Cash went out of service since the acceptor was enabled (the cash
                    # box taken out, the journal cannot be written): the note goes back.
                    return replace(s, notice="cash.off"), [ev.ReturnNote(v, "cash_off", k)]
                if not self.note_fits(t, v):
                    return replace(s, notice="note.too_large"), [
                        ev.ReturnNote(v, "too_large", k)]
                return replace(s, escrow=v, escrow_key=k, notice=""), [ev.StackNote(v, k)]
            case ev.NoteInDoubt(value=v) | ev.NoteCredited(value=v):
                # NoteInDoubt: neither credited nor returned (a jam or power loss while
                # stacking, no trace at a restart): the customer's money in the machine,
                # counted as paid; the technician's cash count settles where it is.
                t = replace(t, paid=t.paid + v, notes=t.notes + (v,))
                return self._after_note(replace(s, txn=t, escrow=0, escrow_key=""))
            case ev.NoteReturned() | ev.NoteRejected():
                notice = "note.rejected" if isinstance(e, ev.NoteRejected) else s.notice
                s = replace(s, escrow=0, escrow_key="", notice=notice)
                if t.cancel_requested:
                    # The cancel (or the fault) waited for the note in escrow; it is decided.
                    finish = ev.CashFault("settled") if t.failure == "cash_fault" else ev.Cancel()
                    return self._on_pay_cash(s, finish)
                return s, []
            case ev.CashFault(in_doubt=in_doubt):
                s = self._with_device(s, "cash", False)
                if in_doubt:
                    # Journals from before note keys: the note being stacked, counted as
                    # paid (the cash count settles where it physically is).
                    t = replace(t, paid=t.paid + in_doubt, notes=t.notes + (in_doubt,))
                    s = replace(s, txn=t, escrow=0, escrow_key="")
                    if t.paid >= t.amount and not t.cancel_requested:
                        s, effects = self._fulfil(s)
                        return s, [ev.DisableCash(), *effects]
                elif s.escrow:
                    # A note in transit is settled first (credited, returned or in doubt, the
                    # acceptor always says which); then the fault ends the payment.
                    t = replace(t, cancel_requested=True, failure="cash_fault")
                    return replace(s, txn=t), [ev.DisableCash()]
                if t.paid:
                    s, effects = self._to_voucher(s, "cash_fault")
                    return s, [ev.DisableCash(), *effects]
                s, effects = self._abandon_unpaid(s, Phase.CHOOSE_PAYMENT, "cash.unavailable")
                return s, [ev.DisableCash(), *effects]
            case ev.Cancel() | ev.Timeout() | ev.Back():
                if s.escrow:
                    # The note in escrow is decided first; cancel once it is stacked/returned.
                    # A customer who walked away (Timeout) and whose note completes the
                    # price is topped up rather than left a voucher nobody collects.
                    if t.cancel_requested:
                        return s, []    # asked already (a fault, an earlier cancel)
                    why = "timeout" if isinstance(e, ev.Timeout) else ""
                    return replace(s, txn=replace(t, cancel_requested=True, failure=why)), []
                if t.paid:
                    s, effects = self._to_voucher(s, "cancelled")
                    return s, [ev.DisableCash(), *effects]
                back = Phase.CHOOSE_PAYMENT if isinstance(e, ev.Back) else None
                s, effects = self._abandon_unpaid(s, back)
                return s, [ev.DisableCash(), *effects]
        return s, []

    def _after_note(self, s: State) -> Result:
        """A note of this payment is in (credited, or in doubt): pay, keep waiting, or end
        the payment that a cancel or a fault asked to end once the note was settled."""
        t = s.txn
        fault = t.cancel_requested and t.failure == "cash_fault"
        walked_away = t.cancel_requested and t.failure == "timeout"
        if t.ref is not None and t.paid >= t.amount and (
                fault or walked_away or not t.cancel_requested):
            # Paid in full (a fault after the last note still tops up what was paid for).
            t = replace(t, cancel_requested=False, failure="")
            if t.paid > t.amount and self._range_takes(t, t.paid):
                t = replace(t, amount=t.paid)   # any amount: all of it is topped up, no change
            s, effects = self._fulfil(replace(s, txn=t))
            return s, [ev.DisableCash(), *effects]
        if t.cancel_requested or t.ref is None:
            s, effects = self._to_voucher(s, "cash_fault" if fault else "cancelled")
            return s, [ev.DisableCash(), *effects]
        return s, []

    def _with_device(self, s: State, name: str, ok: bool) -> State:
        return self.step(s, ev.DeviceStatus(name, ok))[0]

    def _on_pay_voucher(self, s: State, e: ev.Record) -> Result:
        t = s.txn
        match e:
            case ev.ReferenceAllocated(ref=ref) if t.ref is None:
                return replace(s, txn=replace(t, ref=ref)), []
            case ev.VoucherEntered(code=code):
                if t.ref is None:
                    return replace(s, notice="voucher.wait"), []
                if any(c == code for c, _a in t.vouchers_in):
                    return replace(s, notice="voucher.used"), []
                return replace(s, notice="voucher.checking"), [ev.RedeemVoucher(t.ref, code)]
            case ev.VoucherRedeemed(ref=ref, code=code, amount=a) if ref == t.ref:
                t = replace(t, paid=t.paid + a, vouchers_in=t.vouchers_in + ((code, a),))
                s = replace(s, txn=t, notice="")
                if t.paid >= t.amount:
                    return self._fulfil(s)
                return s, []
            case ev.VoucherRefused(ref=ref, reason=reason) if ref == t.ref:
                return replace(s, notice=f"voucher.{reason}"), []
            case ev.ChoosePayment(method="cash") if t.ref and t.paid:
                # The rest in cash, on the same reference.
                if "cash" not in s.methods:
                    return replace(s, notice="cash.unavailable"), []
                return replace(s, phase=Phase.PAY_CASH, notice=""), [ev.EnableCash()]
            case ev.Cancel() | ev.Timeout() | ev.Back():
                if t.paid:
                    # A redeemed voucher cannot be un-redeemed: its value becomes a new one.
                    return self._to_voucher(s, "cancelled")
                back = Phase.CHOOSE_PAYMENT if isinstance(e, ev.Back) else None
                return self._abandon_unpaid(s, back)
        return s, []

    def _on_pay_qr(self, s: State, e: ev.Record) -> Result:
        t = s.txn
        match e:
            case ev.ReferenceAllocated(ref=ref) if t.ref is None:
                return replace(s, txn=replace(t, ref=ref)), [ev.CreateQrOrder(ref, t.amount)]
            case ev.QrOrderCreated(ref=ref, payload=payload, expires_at=exp) if ref == t.ref:
                return replace(s, qr_payload=payload, qr_expires_at=exp), []
            case ev.QrOrderFailed(ref=ref, reason=reason) if ref == t.ref:
                if reason == "unavailable":
                    s = self._with_device(s, "qr", False)
                # "amount_mismatch": the wallet reported less than the order, which the
                # kiosk does not take as a payment (kiosk/paid_amount.py).
                notice = reason if reason == "amount_mismatch" else f"qr.{reason}"
                return self._abandon_unpaid(s, Phase.CHOOSE_PAYMENT, notice)
            case ev.QrPaid(ref=ref, amount=a, provider_ref=p):     # ref matched in step()
                t = replace(t, paid=t.paid + a, payment_ref=p)
                s = replace(s, txn=t, qr_payload="")
                if a != t.amount:
                    # Wallets charge what the order says; anything else is kept as a voucher.
                    # (The shell accepts no more than the order of what a gateway reports,
                    # kiosk/paid_amount.py; this stays for journals written before.)
                    return self._to_voucher(s, "amount_mismatch")
                return self._fulfil(s)
            case ev.QrExpired(ref=ref) if ref == t.ref:
                s, effects = self._abandon_unpaid(s, Phase.CHOOSE_PAYMENT, "qr.expired")
                return s, [ev.CloseQrOrder(ref), *effects]
            case ev.Cancel() | ev.Timeout() | ev.Back():
                closing: list[ev.Record] = [ev.CloseQrOrder(t.ref)] if t.ref else []
                back = Phase.CHOOSE_PAYMENT if isinstance(e, ev.Back) else None
                s, more = self._abandon_unpaid(s, back)
                return s, closing + more
        return s, []

    def _on_pay_card(self, s: State, e: ev.Record) -> Result:
        t = s.txn
        match e:
            case ev.ReferenceAllocated(ref=ref) if t.ref is None:
                return replace(s, txn=replace(t, ref=ref)), [ev.AuthoriseCard(ref, t.amount)]
            case ev.CardApproved(ref=ref, amount=a, auth_code=code):   # ref matched in step()
                t = replace(t, paid=t.paid + a, payment_ref=code or e.trace,
                            card_receipt_no=e.receipt_no)
                s = replace(s, txn=t, card_text="")
                if t.cancel_requested or a != t.amount:
                    return s, [ev.ReverseCard(ref, a, e.receipt_no)]
                return s, []            # booked; the top-up waits for the terminal's completion
            case ev.CardCompleted(ref=ref) if ref == t.ref and t.paid:
                if t.cancel_requested or t.paid != t.amount:
                    return s, []        # being reversed already
                return self._fulfil(s)
            case ev.CardNotCompleted(ref=ref) if ref == t.ref:
                if not t.paid:
                    return self._abandon_unpaid(s, Phase.CHOOSE_PAYMENT, "card.declined")
                if t.cancel_requested or t.paid != t.amount:
                    return s, []        # its reversal was asked for at the approval
                # The terminal did not complete it (or cannot say): give the money back.
                return s, [ev.ReverseCard(ref, t.paid, t.card_receipt_no)]
            case ev.CardDeclined(ref=ref, reason=reason) if ref == t.ref:
                if t.cancel_requested:
                    return self._abandon_unpaid(s, None)
                return self._abandon_unpaid(s, Phase.CHOOSE_PAYMENT, f"card.{reason}")
            case ev.CardReversed(ref=ref) if ref == t.ref:
                t = replace(t, refunded=t.refunded + t.paid - t.refunded - t.credited - t.voucher)
                return self._close(replace(s, txn=t), Outcome.CANCELLED)
            case ev.CardReversalFailed(ref=ref) if ref == t.ref:
                return self._to_voucher(s, "reversal_failed")
            case ev.Cancel() | ev.Back():
                if t.ref is None:
                    return self._abandon_unpaid(s, Phase.CHOOSE_PAYMENT)
                if t.paid:
                    return s, []        # approved at the terminal: too late to cancel
                return replace(s, txn=replace(t, cancel_requested=True)), [ev.AbortCard(t.ref)]
        return s, []

    def _on_fulfilling(self, s: State, e: ev.Record) -> Result:
        t = s.txn
        match e:
            case ev.TopUpSucceeded(ref=ref, operator_ref=oref) if ref == t.ref:
                t = replace(t, credited=t.amount, operator_ref=oref, unknown_queries=0)
                s = replace(s, txn=t)
                if t.paid > t.amount:
                    return self._to_voucher(s, "change")
                return self._close(s, Outcome.SUCCESS)
            case ev.TopUpFailed(ref=ref, reason=reason) if ref == t.ref:
                s = replace(s, txn=replace(t, failure=reason))
                if t.method == "card":
                    return s, [ev.ReverseCard(ref, t.paid, t.card_receipt_no)]
                return self._to_voucher(s, reason)
            case ev.TopUpUnknown(ref=ref) if ref == t.ref:
                n = t.unknown_queries + 1
                s = replace(s, txn=replace(t, unknown_queries=n))
                if n > self.policy.max_unknown_queries:
                    # The customer is not kept waiting for ever: a voucher that becomes valid
                    # only if the top-up finally fails, and a PENDING receipt.
                    return s, [ev.IssueVoucher(ref, t.paid - t.credited, "pending", held=True)]
                return s, [ev.QueryTopUp(ref, n)]
            case ev.CardReversed(ref=ref) if ref == t.ref:
                t = replace(t, refunded=t.paid - t.credited - t.voucher)
                return self._close(replace(s, txn=t), Outcome.FAILED_REFUNDED)
            case ev.CardReversalFailed(ref=ref) if ref == t.ref:
                return self._to_voucher(s, "reversal_failed")
            case ev.VoucherIssued(ref=ref, code=code, amount=a, held=held) if ref == t.ref:
                if held:
                    t = replace(t, voucher_code=code, voucher_held=True,
                                outcome=Outcome.PENDING)
                    s = replace(s, txn=t, phase=Phase.RESULT, receipt_printed=None)
                    return s, [ev.PrintReceipt(ref)]
                t = replace(t, voucher=t.voucher + a, voucher_code=code)
                s = replace(s, txn=t)
                if t.credited:
                    return self._close(s, Outcome.SUCCESS)
                if t.failure in ("cancelled", "cash_fault"):
                    return self._close(s, Outcome.CANCELLED)
                return self._close(s, Outcome.FAILED_VOUCHER)
        return s, []

    def _on_result(self, s: State, e: ev.Record) -> Result:
        t = s.txn
        if t.outcome is Outcome.PENDING and not t.closed:
            pending = self._pending(s, e)
            if pending is not None:
                return pending
        match e:
            case ev.ShowReceipt() if s.txn.ref and s.txn.paid:
                return replace(s, phase=Phase.RECEIPT), []
            case ev.Done() | ev.Timeout() | ev.Cancel():
                return self._idle(s), []
            case ev.SimIdentified(iccid=iccid):
                return self._sim_lookup(self._idle(s), iccid)
        return s, []

    def _on_receipt(self, s: State, e: ev.Record) -> Result:
        match e:
            case ev.Done() | ev.Timeout() | ev.Cancel():
                return self._idle(s), []
            case ev.Back():
                return replace(s, phase=Phase.RESULT), []
        return s, []

    def _pending(self, s: State, e: ev.Record) -> Result | None:
        """A PENDING top-up resolving after the customer got the receipt and the held voucher."""
        t = s.txn
        match e:
            case ev.TopUpUnknown(ref=ref) if ref == t.ref:
                n = t.unknown_queries + 1
                return replace(s, txn=replace(t, unknown_queries=n)), [ev.QueryTopUp(ref, n)]
            case ev.TopUpSucceeded(ref=ref, operator_ref=oref) if ref == t.ref:
                t = replace(t, credited=t.amount, operator_ref=oref)
                change = t.paid - t.amount
                if change:
                    # The held voucher stands for the change only.
                    t = replace(t, voucher=change)
                    effects: list[ev.Record] = [
                        ev.SetVoucherStatus(ref, t.voucher_code, "active", amount=change)]
                else:
                    effects = [ev.SetVoucherStatus(ref, t.voucher_code, "void")]
                s, more = self._close(replace(s, txn=t, phase=s.phase), Outcome.SUCCESS)
                return s, effects + [m for m in more if not isinstance(m, ev.PrintReceipt)]
            case ev.TopUpFailed(ref=ref, reason=reason) if ref == t.ref:
                t = replace(t, failure=reason, voucher=t.paid)
                s, more = self._close(replace(s, txn=t), Outcome.FAILED_VOUCHER)
                activate = ev.SetVoucherStatus(ref, t.voucher_code, "active", amount=t.voucher)
                return s, [activate] + [m for m in more if not isinstance(m, ev.PrintReceipt)]
        return None
