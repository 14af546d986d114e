"""What an X or Z report says (kiosk.reports makes them, kiosk.report_text prints them):
plain frozen dataclasses, stored as JSON with each Z (`Report.to_dict` / `from_dict`).
Money is int minor units."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Count:
    """How many and how much (minor units)."""
    count: int = 0
    amount: int = 0


@dataclass(frozen=True)
class Group:
    """Top-ups credited for one operator, product or product kind: count, credited."""
    key: str
    count: int
    amount: int


@dataclass(frozen=True)
class OutcomeGroup:
    """Transactions closed with one outcome, with their money split as they closed."""
    outcome: str
    count: int
    paid: int
    credited: int
    voucher: int
    refunded: int


@dataclass(frozen=True)
class CashIn:
    """Notes that went into the cash box during the period."""
    notes: dict[int, int]          # value -> count
    count: int
    total: int
    to_transactions: Count         # a customer's (credited, or in doubt and counted as paid)
    orphan: Count                  # credited to nobody
    in_doubt: Count                # of the total: neither credited nor returned
    at_power_up: Count             # found in the stacker at power-up: NOT in the total


@dataclass(frozen=True)
class Vouchers:
    issued: Count                  # valid when issued (change, failed top-up, cancel, late)
    held: Count                    # held for a PENDING top-up: valid only if it fails
    activated: Count               # held vouchers made valid (with their final value)
    voided: Count                  # held vouchers voided (the top-up succeeded)
    redeemed: Count                # used as payment


@dataclass(frozen=True)
class TopUps:
    count: int                     # top-ups the provider confirmed
    credited: int
    by_outcome: tuple[OutcomeGroup, ...]
    by_operator: tuple[Group, ...]
    by_product: tuple[Group, ...]
    by_kind: tuple[Group, ...]     # empty unless a catalog was given


@dataclass(frozen=True)
class Transactions:
    opened: int                    # references allocated in the period
    closed: int                    # closed in the period
    open_refs: tuple[str, ...]     # still open at the end of the period (any period's)


@dataclass(frozen=True)
class BoxEvent:
    """A cash box taken out or put in, as the journal has it."""
    kind: str                      # "removed" | "inserted"
    seq: int
    ts: float
    by: str
    counted: int | None = None     # what the technician counted at removal, if entered
    expected: int | None = None    # the box total by the journal at removal
    difference: int | None = None  # counted - expected (positive: more cash than journaled)
    power_up_notes: int = 0        # notes found at power-up in that box, credited to nobody


@dataclass(frozen=True)
class CashBox:
    """The notes in the cash box by the journal, since it was put in."""
    currency: str
    notes: dict[int, int]          # value -> count
    count: int
    total: int
    since_seq: int                 # the CashBoxInserted, 0 = the beginning of the journal
    since_ts: float | None
    as_of_seq: int                 # counted from the journal up to this seq
    removed_pending: bool          # taken out and no box put back: keep cash disabled
    removed_by: str | None = None
    removed_ts: float | None = None
    at_power_up: Count = Count()   # found in the stacker at power-up: NOT in the total


@dataclass(frozen=True)
class Report:
    """An X (current period, not closed) or Z (closed, stored) report."""
    kind: str                      # "X" | "Z"
    number: int                    # the Z's number; for an X, the number its Z will get
    kiosk_id: str
    currency: str
    from_seq: int                  # the period has the events with from_seq < seq <= to_seq
    to_seq: int
    from_ts: float | None          # the previous Z, or the first event of the journal
    to_ts: float                   # the Z, or when the X was made
    closed_by: str | None
    cash: CashIn
    qr: Count
    card_approved: Count
    card_reversed: Count
    card_reversal_failed: Count
    vouchers: Vouchers
    late_payments: Count
    topups: TopUps
    transactions: Transactions
    cash_box: CashBox
    box_events: tuple[BoxEvent, ...]
    discrepancies: list[str]

    @property
    def closed(self) -> bool:
        return self.kind == "Z"

    @property
    def money_in(self) -> int:
        """Everything customers paid in the period, net of card reversals."""
        return (self.cash.total + self.qr.amount + self.card_approved.amount
                - self.card_reversed.amount)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        return _load(cls, d)


def _jsonable(obj: Any) -> Any:
    """Dataclasses to plain JSON: note maps become [{value, count, amount}] by value."""
    if hasattr(obj, "__dataclass_fields__"):
        out: dict[str, Any] = {}
        for f in fields(obj):
            v = getattr(obj, f.name)
            out[f.name] = ([{"value": k, "count": n, "amount": k * n} for k, n in sorted(v.items())]
                           if f.name == "notes" else _jsonable(v))
        return out
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


_NESTED: dict[str, type] = {
    "cash": CashIn, "qr": Count, "card_approved": Count, "card_reversed": Count,
    "card_reversal_failed": Count, "vouchers": Vouchers, "late_payments": Count,
    "topups": TopUps, "transactions": Transactions, "cash_box": CashBox,
    "to_transactions": Count, "orphan": Count, "in_doubt": Count, "at_power_up": Count,
    "issued": Count, "held": Count, "activated": Count, "voided": Count, "redeemed": Count,
}
_NESTED_LISTS: dict[str, type] = {
    "box_events": BoxEvent, "by_outcome": OutcomeGroup, "by_operator": Group,
    "by_product": Group, "by_kind": Group,
}


def _load(cls: type, d: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in d:
            continue                # a field added later: its default (stored reports stay)
        v = d[f.name]
        if f.name == "notes":
            v = {int(n["value"]): int(n["count"]) for n in v}
        elif f.name in _NESTED and isinstance(v, dict):
            v = _load(_NESTED[f.name], v)
        elif f.name in _NESTED_LISTS:
            v = tuple(_load(_NESTED_LISTS[f.name], x) for x in v)
        elif f.name == "discrepancies":
            v = list(v)
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    return cls(**kwargs)
