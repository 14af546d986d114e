"""The amount a wallet gateway says was paid, checked against the order.

A dynamic QR order asks for exactly the order's amount (kiosk/payments/gateway.py refuses a
payload for any other), so a "paid" status with another amount is a gateway fault, a
misconfiguration or fraud; the kiosk cannot verify the figure. The rule:

- more than the order: the kiosk accepts the order's amount only (the customer is topped
  up, or keeps a late payment as a voucher, for what the order asked: never a voucher for
  money the kiosk did not verify);
- less than the order: not paid in full. A QR order cannot take the rest (the gateway's
  "paid" is final), and a voucher would hand an unverified sum to whoever stands at the
  kiosk, so the kiosk accepts nothing: no top-up, no voucher. The payment screen ends as
  "amount_mismatch" (the transaction closes with nothing paid; the customer may pay another
  way) and the operator refunds the payer through the gateway, which knows who paid.

Either way the gateway's figure is journaled as a fact (WalletAmountMismatch: ordered,
reported, accepted), logged as an ALERT, and listed for the operator to reconcile
(kiosk/reconcile.py, `kiosk journal list --unresolved`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import events as ev
from .money import fmt

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("kiosk.runtime")


def ordered_amount(rt: Runtime, ref: str, default: int = 0) -> int:
    """What the QR order of `ref` asked for (its journaled CreateQrOrder, else the price of
    its transaction; 0 if the journal has neither)."""
    row = rt.journal.db.execute(
        "SELECT json_extract(data, '$.amount') FROM events INDEXED BY events_ref"
        " WHERE ref = ? AND kind = 'CreateQrOrder' ORDER BY seq LIMIT 1", (ref,)).fetchone()
    if row and row[0] is not None:
        return int(row[0])
    txn = rt.journal.transaction(ref)
    return txn.amount if txn is not None else default


def accepted(rt: Runtime, ref: str, reported: int, provider_ref: str, ordered: int) -> int:
    """What the kiosk accepts of a payment the gateway reports: `ordered` when it reports
    at least that much, else 0 (an order the journal does not know: 0). A figure other
    than the order's is journaled (once per payment) and logged as an ALERT."""
    if reported == ordered:
        return reported
    take = ordered if reported > ordered else 0
    seen = rt.journal.db.execute(
        "SELECT 1 FROM events INDEXED BY events_ref WHERE ref = ? AND kind ="
        " 'WalletAmountMismatch' AND json_extract(data, '$.provider_ref') = ?",
        (ref, provider_ref)).fetchone()
    if seen is None:
        rt.journal.annotate([(ref, ev.WalletAmountMismatch(ref, ordered, reported, take,
                                                           provider_ref))])
        cur = rt.settings.currency
        log.error("ALERT wallet payment %s on %s reported %s for an order of %s: %s; settle"
                  " it with the gateway", provider_ref or "-", ref, fmt(reported, cur),
                  fmt(ordered, cur), f"only {fmt(take, cur)} accepted" if take else
                  "not paid in full, nothing accepted (no top-up, no voucher)")
    return take
