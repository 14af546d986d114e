"""What happens to the kiosk (events) and what the kiosk must do about it (effects).

Events come from the customer (through the screens), from devices and from backends.
Effects are instructions for the imperative shell (kiosk.runtime); their results come
back as events. Both are plain frozen dataclasses so they can be journaled as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any, ClassVar


class Record:
    """Something that can be written to the journal and read back."""

    money: ClassVar[bool] = False     # concerns money: journaled before it is acted on
    # Every record is a dataclass (this tells the type checker so).
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, date):
                d[k] = v.isoformat()
        return d

    @classmethod
    def kind(cls) -> str:
        return cls.__name__


# ---------------------------------------------------------------- customer events
@dataclass(frozen=True)
class Start(Record):
    """The customer touched the attract screen."""


@dataclass(frozen=True)
class NumberEntered(Record):
    raw: str


@dataclass(frozen=True)
class ChooseLanguage(Record):
    """The customer's language, for what leaves the screen: the receipt, the voice."""
    lang: str


@dataclass(frozen=True)
class ChooseOperator(Record):
    """The customer corrects the network the number is with (a ported number the
    provider could not tell, or told wrong), before paying."""
    operator: str


@dataclass(frozen=True)
class ConfirmNumber(Record):
    yes: bool


@dataclass(frozen=True)
class ChooseProduct(Record):
    product_id: str
    amount: int                      # minor units
    today: date | None = None


@dataclass(frozen=True)
class ChoosePayment(Record):
    method: str                      # "cash" | "qr" | "card" | "voucher"


@dataclass(frozen=True)
class VoucherEntered(Record):
    """A voucher code typed on the keypad or read by the scanner (digits only)."""
    code: str


@dataclass(frozen=True)
class VoucherRedeemed(Record):
    """A voucher used as payment on `ref`: journaled in the same write that marks it
    redeemed, so it can never pay twice."""
    money = True
    ref: str
    code: str
    amount: int


@dataclass(frozen=True)
class VoucherRefused(Record):
    ref: str
    code: str
    reason: str                      # "invalid" | "unknown" | "used" | "expired" | "held" | "void"
    #                                  | "slow_down" (too many refusals: voucher_guard.py)


@dataclass(frozen=True)
class Back(Record):
    pass


@dataclass(frozen=True)
class Cancel(Record):
    pass


@dataclass(frozen=True)
class Timeout(Record):
    """The customer did not answer "Need more time?"."""


@dataclass(frozen=True)
class ShowReceipt(Record):
    pass


@dataclass(frozen=True)
class Done(Record):
    pass


# ---------------------------------------------------------------- device / backend events
@dataclass(frozen=True)
class SimIdentified(Record):
    iccid: str


@dataclass(frozen=True)
class SimRemoved(Record):
    pass


@dataclass(frozen=True)
class SimUnreadable(Record):
    """A card is in the reader but gave no usable ICCID."""
    reason: str                      # "not_sim" | "mute" | "bad_iccid" | "removed" | "unreadable"


@dataclass(frozen=True)
class SubscriberFound(Record):
    iccid: str
    msisdn: str


@dataclass(frozen=True)
class SubscriberNotFound(Record):
    iccid: str


@dataclass(frozen=True)
class SubscriberChecked(Record):
    """The provider's answer before any money: the number's operator (detected; a ported
    number may differ from its prefix), the catalog products it can be sold now, and its
    balance where the operator offers an inquiry."""
    msisdn: str
    operator: str
    offered: tuple[str, ...]
    airtime: int | None = None
    data_mb: int | None = None
    valid_until: str = ""


@dataclass(frozen=True)
class SubscriberCheckFailed(Record):
    msisdn: str
    reason: str                      # "unavailable" | "unknown_operator"


@dataclass(frozen=True)
class BalanceReported(Record):
    """The balance after a successful top-up (shown on the result screen)."""
    ref: str
    airtime: int | None = None
    data_mb: int | None = None
    valid_until: str = ""


@dataclass(frozen=True)
class DeviceStatus(Record):
    device: str                      # "cash" | "card" | "qr" | "backend" | "printer" | "sim"
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class ReferenceAllocated(Record):
    money = True
    ref: str


@dataclass(frozen=True)
class NoteEscrowed(Record):
    money = True
    value: int
    key: str = ""                    # the acceptor's own name for this note: "epoch:seq"


@dataclass(frozen=True)
class NoteCredited(Record):
    """The acceptor's credit point (ID-003 vend valid): the note is in the cash box.
    Entered by the money gate under ("note", key) before the acceptor is ACKed; the gate
    fills `ref` with the open transaction whose StackNote named the key (None: orphan)."""
    money = True
    value: int
    key: str = ""
    ref: str | None = None


@dataclass(frozen=True)
class NoteReturned(Record):
    money = True
    value: int
    key: str = ""
    ref: str | None = None


@dataclass(frozen=True)
class NoteRejected(Record):
    reason: str


@dataclass(frozen=True)
class CashFault(Record):
    money = True
    reason: str                      # "acceptor_jam", "stacker_full", "stuck_stacking", ...
    in_doubt: int = 0                # journals before keys: a note being stacked (now NoteInDoubt)


@dataclass(frozen=True)
class NoteInDoubt(Record):
    """A note the customer gave that the acceptor neither credited nor returned (a jam or a
    power loss while stacking, a restart that found no trace of it). Counted as paid for
    the customer (it ends in a voucher) and flagged for the technician's cash count; it
    takes the note's one outcome slot ("note", key), so a later credit adds nothing."""
    money = True
    value: int
    key: str
    reason: str
    ref: str | None = None


@dataclass(frozen=True)
class NoteAtPowerUp(Record):
    """The acceptor restarted with a note inside: kept for reconciliation, never dropped."""
    money = True
    where: str                       # "stacker" | "acceptor"
    value: int = 0                   # the note the kiosk had in flight, 0 if none known
    key: str = ""


@dataclass(frozen=True)
class QrOrderCreated(Record):
    money = True
    ref: str
    payload: str
    expires_at: float                # unix time


@dataclass(frozen=True)
class QrOrderFailed(Record):
    money = True
    ref: str
    reason: str


@dataclass(frozen=True)
class QrPaid(Record):
    money = True
    ref: str
    amount: int
    provider_ref: str


@dataclass(frozen=True)
class QrExpired(Record):
    money = True
    ref: str


@dataclass(frozen=True)
class CardApproved(Record):
    """The terminal approved the payment. Journaled before the kiosk confirms the result to
    the terminal (a terminal reverses a result the ECR never confirmed); the top-up waits
    for CardCompleted (or a CardNotCompleted reverses it)."""
    money = True
    ref: str
    amount: int
    auth_code: str
    trace: str
    receipt_no: str = ""       # the terminal's receipt number: what a reversal names
    card_name: str = ""        # "Mastercard": the card type, never its number
    terminal_id: str = ""
    card_last4: str = ""       # the card number's last four digits, never more


@dataclass(frozen=True)
class CardCompleted(Record):
    """The terminal completed the approved payment (its completion arrived, or it says its
    last transaction is this approval): now the top-up may be done."""
    money = True
    ref: str


@dataclass(frozen=True)
class CardNotCompleted(Record):
    """An approval was booked and confirmed, but the terminal did not complete the payment
    (it reversed it itself: the confirmation came too late; or it cannot say): reverse it,
    top up nothing."""
    money = True
    ref: str
    reason: str


@dataclass(frozen=True)
class CardReceipt(Record):
    """The terminal's receipt lines for a payment (printed on the kiosk's receipt)."""
    money = True
    ref: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class CardText(Record):
    """The card terminal's message for the customer while it works ("Insert card")."""
    text: str


@dataclass(frozen=True)
class CardDeclined(Record):
    money = True
    ref: str
    reason: str
    result_code: int | None = None   # the terminal's result code, when it gave one


@dataclass(frozen=True)
class CardReversed(Record):
    money = True
    ref: str


@dataclass(frozen=True)
class CardReversalFailed(Record):
    money = True
    ref: str
    reason: str


@dataclass(frozen=True)
class TopUpSucceeded(Record):
    money = True
    ref: str
    operator_ref: str


@dataclass(frozen=True)
class TopUpFailed(Record):
    money = True
    ref: str
    reason: str                      # message key, e.g. "backend.rejected"


@dataclass(frozen=True)
class TopUpUnknown(Record):
    """No final answer (timeout, connection drop, 5xx): never a failure."""
    money = True
    ref: str
    detail: str = ""


@dataclass(frozen=True)
class VoucherIssued(Record):
    money = True
    ref: str
    code: str
    amount: int
    held: bool = False               # valid only if a pending top-up finally fails
    expires: str = ""                # last day it can be used (ISO date), "" never


@dataclass(frozen=True)
class ReceiptPrinted(Record):
    ref: str


@dataclass(frozen=True)
class PrinterFailed(Record):
    ref: str
    reason: str


# ---------------------------------------------------------------- effects
@dataclass(frozen=True)
class LookupSubscriber(Record):
    iccid: str


@dataclass(frozen=True)
class RedeemVoucher(Record):
    """Use voucher `code` as payment on `ref` (at most what is still to pay is asked; a
    voucher worth more is used whole and the difference is change)."""
    money = True
    ref: str
    code: str


@dataclass(frozen=True)
class CheckSubscriber(Record):
    msisdn: str
    operator: str
    chosen: bool = False        # the customer chose the network: no detection


@dataclass(frozen=True)
class QueryBalance(Record):
    ref: str
    msisdn: str
    operator: str


@dataclass(frozen=True)
class AllocateReference(Record):
    pass


@dataclass(frozen=True)
class EnableCash(Record):
    pass


@dataclass(frozen=True)
class DisableCash(Record):
    pass


@dataclass(frozen=True)
class StackNote(Record):
    money = True
    value: int
    key: str = ""


@dataclass(frozen=True)
class ReturnNote(Record):
    money = True
    value: int
    reason: str
    key: str = ""


@dataclass(frozen=True)
class CreateQrOrder(Record):
    money = True
    ref: str
    amount: int


@dataclass(frozen=True)
class CloseQrOrder(Record):
    money = True
    ref: str


@dataclass(frozen=True)
class AuthoriseCard(Record):
    money = True
    ref: str
    amount: int


@dataclass(frozen=True)
class AbortCard(Record):
    ref: str


@dataclass(frozen=True)
class ReverseCard(Record):
    money = True
    ref: str
    amount: int
    receipt_no: str = ""


@dataclass(frozen=True)
class TopUp(Record):
    money = True
    ref: str
    msisdn: str
    operator: str
    product_id: str
    amount: int


@dataclass(frozen=True)
class QueryTopUp(Record):
    money = True
    ref: str
    attempt: int


@dataclass(frozen=True)
class IssueVoucher(Record):
    money = True
    ref: str
    amount: int
    reason: str
    held: bool = False


@dataclass(frozen=True)
class SetVoucherStatus(Record):
    """A held voucher becomes valid (the pending top-up failed) or void (it succeeded)."""
    money = True
    ref: str
    code: str
    status: str                      # "active" | "void"
    amount: int | None = None        # the voucher's final value when it becomes active


@dataclass(frozen=True)
class PrintReceipt(Record):
    ref: str


@dataclass(frozen=True)
class CloseTransaction(Record):
    """Every unit of money of this reference is accounted for: the transaction is final."""
    money = True
    ref: str
    outcome: str
    paid: int
    credited: int
    voucher: int
    refunded: int


@dataclass(frozen=True)
class LatePayment(Record):
    """Money arrived for a reference that is no longer on screen (paid after cancel/expiry)."""
    money = True
    ref: str
    amount: int
    source: str


@dataclass(frozen=True)
class OrphanNote(Record):
    """A note credited while no transaction was open: kept for reconciliation."""
    money = True
    value: int


@dataclass(frozen=True)
class RecoveryStarted(Record):
    """An annotation, not a step: at start the kiosk found `ref` unfinished and resumed it
    (the technician reads these with `kiosk journal list --unresolved`)."""
    money = True
    ref: str
    phase: str
    paid: int


@dataclass(frozen=True)
class JournalRestored(Record):
    """The journal was put back from a backup (`kiosk journal restore`): the first event
    after the copy's last. Events the lost journal wrote after the copy (up to `lost_to`,
    as far as the folder knew) are not here; new references carry `new_tag`."""
    money = True
    source: str               # the backup file's name
    copy_last_seq: int
    lost_to: int              # the folder's high-water mark before the restore
    old_tag: str
    new_tag: str
    by: str


@dataclass(frozen=True)
class WalletAmountMismatch(Record):
    """The wallet gateway reported a payment of `reported` for an order of `ordered`
    (kiosk/paid_amount.py). The kiosk accepted `accepted` of it (the order's amount when at
    least that much was reported, else 0: no top-up) and keeps the reported figure here as
    a fact, for the operator to reconcile with the gateway (`kiosk journal list
    --unresolved`)."""
    money = True
    ref: str
    ordered: int
    reported: int
    accepted: int
    provider_ref: str


# ---------------------------------------------------------------- voucher delivery and audit
# A voucher is named here by its reference, the last four digits of its code and
# `voucher_seq` (the journal seq of its VoucherIssued), never by its full code: these records
# can be read (`kiosk journal show`) without handing the money to whoever reads them.
@dataclass(frozen=True)
class VoucherSent(Record):
    """The SMS gateway accepted the voucher's text (its code in full, value, expiry) for the
    transaction's number: the kiosk does not send it again (kiosk/voucher_delivery.py)."""
    ref: str
    code_last4: str
    voucher_seq: int
    gateway_id: str                  # the gateway's message id
    by: str = ""                     # "": the kiosk; else who asked (`kiosk voucher resend`)


@dataclass(frozen=True)
class VoucherSmsRefused(Record):
    """The SMS gateway refused the voucher's text for good (an invalid number, ...): the
    kiosk does not retry it; a technician can `kiosk voucher resend` it."""
    ref: str
    code_last4: str
    voucher_seq: int
    reason: str
    by: str = ""


@dataclass(frozen=True)
class VoucherShown(Record):
    """A technician displayed the voucher's full code (`kiosk voucher show`)."""
    ref: str
    code_last4: str
    voucher_seq: int
    by: str


@dataclass(frozen=True)
class VoucherReprinted(Record):
    """A technician reprinted the voucher's slip (`kiosk voucher reprint`)."""
    ref: str
    code_last4: str
    voucher_seq: int
    by: str
    printed: bool                    # on the receipt printer (else written to the terminal)


@dataclass(frozen=True)
class VoucherVoided(Record):
    """A technician voided an active voucher (`kiosk voucher void`): it can no longer pay.
    Written in the SQL transaction of the status change (Journal.void_voucher); the ledger
    posts its value as `voucher_voided` (kiosk/ledger.py `technician_void`)."""
    money = True
    ref: str
    code_last4: str
    voucher_seq: int
    amount: int
    was: str                         # the status before: "active" | "held"
    by: str
    reason: str

ANNOTATIONS = frozenset({"RecoveryStarted", "JournalRestored",
                         "WalletAmountMismatch"})   # journaled, never replayed


@dataclass(frozen=True)
class CashBoxRemoved(Record):
    """A technician took the cash box out (journaled with no transaction reference)."""
    money = True
    by: str                   # who, as the maintenance login names them
    counted: int | None = None   # what the technician counted, minor units, if entered


@dataclass(frozen=True)
class CashBoxInserted(Record):
    """An (empty) cash box was put in: the box counters start from zero."""
    money = True
    by: str


@dataclass(frozen=True)
class LateCredit(Record):
    """The provider credited `ref`'s top-up after the transaction closed as failed (a late
    commit, found by kiosk/late_credit.py). Journaled in one write with the void (or the
    reduction to the change) of the transaction's unused voucher. `cancelled`: the voucher
    value that write cancelled; `to_recover`: what the customer got back as well (a voucher
    already redeemed, a card payment reversed), for the operator to recover or write off."""
    money = True
    ref: str
    operator_ref: str
    amount: int                      # what the provider credited (the TopUp's amount)
    voucher_code: str = ""           # the voucher of the failure ("" none)
    cancelled: int = 0
    to_recover: int = 0
    how: str = ""                    # "voucher_unused" | "voucher_redeemed" | "card_reversed"
                                     # | "voucher_gone" (void/expired before) | "nothing_paid"


EVENT_TYPES: dict[str, type[Record]] = {
    cls.__name__: cls for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, Record) and cls is not Record
}


def from_dict(kind: str, data: dict[str, Any]) -> Record:
    cls = EVENT_TYPES[kind]
    kwargs = dict(data)
    for f in fields(cls):
        if f.name == "today" and isinstance(kwargs.get("today"), str):
            kwargs["today"] = date.fromisoformat(kwargs["today"])
        elif isinstance(kwargs.get(f.name), list):
            kwargs[f.name] = tuple(kwargs[f.name])     # JSON has no tuples
    return cls(**kwargs)


EFFECT_TYPES: frozenset[str] = frozenset({
    "LookupSubscriber", "CheckSubscriber", "QueryBalance", "RedeemVoucher",
    "AllocateReference", "EnableCash",
    "DisableCash", "StackNote",
    "ReturnNote", "CreateQrOrder", "CloseQrOrder", "AuthoriseCard", "AbortCard", "ReverseCard",
    "TopUp", "QueryTopUp", "IssueVoucher", "PrintReceipt", "CloseTransaction", "LatePayment",
    "OrphanNote", "SetVoucherStatus",
})


def is_effect(kind: str) -> bool:
    return kind in EFFECT_TYPES


# ---------------------------------------------------------------- keys of money facts
NOTE_OUTCOMES = (NoteCredited, NoteReturned, NoteInDoubt)


def fact_key(rec: Record) -> tuple[str, str] | None:
    """The (source, key) under which a money fact from outside is entered once.

    A note has one outcome slot (credited, returned or in doubt: the first wins); a card
    approval by its terminal, receipt (or trace) number and the sale; a wallet payment by the
    gateway's reference; a top-up's final answer by the kiosk's reference. (A voucher is
    the kiosk's own: its code is the vouchers table's key, and a clash is an error.)"""
    match rec:
        case NoteCredited(key=k) | NoteReturned(key=k) | NoteInDoubt(key=k) if k:
            return ("note", k)
        case StackNote(key=k) if k:
            return ("stack", k)
        case ReturnNote(key=k) if k:
            return ("return", k)
        case CardApproved(ref=r, terminal_id=tid, receipt_no=rno, trace=trace):
            # A terminal's receipt and trace numbers wrap (4 and 6 digits): the kiosk's
            # reference keeps an approval of a later sale from passing for a repeat.
            return ("card", f"{tid}:{rno or trace}:{r}")
        case CardReversed(ref=r):
            return ("card-reversal", r)
        case QrPaid(ref=r, provider_ref=p):
            return ("qr", p or r)
        case TopUpSucceeded(ref=r) | TopUpFailed(ref=r):
            return ("topup", r)
    return None
