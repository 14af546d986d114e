"""What the operator must reconcile by hand, from the journal (`kiosk journal list
--unresolved` lists it with the open and recovered transactions):

- a late credit (kiosk/late_credit.py) after the customer got the money back already (a
  voucher redeemed, a card payment reversed): recover the amount or write it off;
- a wallet payment reported for another amount than the order's (kiosk/paid_amount.py):
  settle the difference with the gateway (refund the payer what was charged and not
  credited).

Read-only; phone numbers are never read, voucher codes are shown by their last 4 digits.
"""

from __future__ import annotations

import json
import sqlite3

from .money import fmt

_FLAGS = ("SELECT ref, kind, data FROM events INDEXED BY events_kind"
          " WHERE kind IN ('LateCredit', 'WalletAmountMismatch') ORDER BY seq DESC")


def _words(kind: str, d: dict, currency: str) -> str | None:
    if kind == "LateCredit":
        if not d.get("to_recover"):
            return None                 # settled by itself: the unused voucher was voided
        code = d.get("voucher_code") or ""
        why = {"voucher_redeemed": f"its voucher ...{code[-4:]} was redeemed already",
               "card_reversed": "its card payment was reversed already"}.get(
            d.get("how", ""), "the customer kept the money as well")
        return (f"late credit of {fmt(d['amount'], currency)} (operator ref "
                f"{d.get('operator_ref') or '-'}) after the top-up failed, but {why}: recover "
                f"{fmt(d['to_recover'], currency)} or write it off")
    reported, ordered = int(d["reported"]), int(d["ordered"])
    if d.get("accepted"):
        return (f"the wallet reported {fmt(reported, currency)} paid for an order of "
                f"{fmt(ordered, currency)} (payment {d.get('provider_ref') or '-'}): only "
                f"{fmt(int(d['accepted']), currency)} credited; check the gateway's "
                f"settlement and refund the payer any difference charged")
    return (f"the wallet reported {fmt(reported, currency)} paid for an order of "
            f"{fmt(ordered, currency)} (payment {d.get('provider_ref') or '-'}): not topped "
            f"up, no voucher; refund the payer through the gateway")


def to_reconcile(db: sqlite3.Connection, currency: str,
                 limit: int = 50) -> dict[str | None, list[str]]:
    """Reference -> what to reconcile on it, newest first (at most `limit` references)."""
    out: dict[str | None, list[str]] = {}
    for ref, kind, data in db.execute(_FLAGS):
        words = _words(kind, json.loads(data), currency)
        if words is None:
            continue
        if ref not in out and len(out) >= limit:
            break
        out.setdefault(ref, []).append(words)
    return out
