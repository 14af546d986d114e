"""The receipt: what the customer takes away, printed and shown on screen.

Printed in English (receipt printers' built-in fonts have no CJK); the screen shows the
same facts in the customer's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from .catalog import Catalog, mask_number
from .engine import Outcome, Txn
from .money import fmt
from .vouchers import pretty

STATUS_TEXT = {
    Outcome.SUCCESS: "SUCCESS",
    Outcome.FAILED_VOUCHER: "NOT TOPPED UP - VOUCHER ISSUED",
    Outcome.FAILED_REFUNDED: "NOT TOPPED UP - CARD PAYMENT REVERSED",
    Outcome.CANCELLED: "CANCELLED",
    Outcome.PENDING: "PENDING - KEEP THIS RECEIPT",
}

METHOD_TEXT = {"cash": "Cash", "qr": "QR wallet", "card": "Bank card"}


@dataclass(frozen=True)
class Receipt:
    lines: list[str]
    qr: str            # what the receipt's QR code holds: the reference to check the status


def build(txn: Txn, catalog: Catalog, *, kiosk_id: str, site: str, support: str,
          tz: str, now: float) -> Receipt:
    cur = catalog.currency
    when = datetime.fromtimestamp(now, timezone.utc).astimezone(ZoneInfo(tz))
    op = catalog.operator(txn.operator).name if txn.operator else ""
    try:
        product = catalog.product(txn.product_id).name
    except KeyError:
        product = txn.product_id
    lines = [
        "PREPAID TOP-UP",
        f"Kiosk {kiosk_id}",
        site,
        when.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)"),
        "-" * 32,
        f"Reference:  {txn.ref}",
        f"Number:     {mask_number(txn.msisdn, '*')}",
        f"Operator:   {op}",
        f"Product:    {product}",
        f"Price:      {fmt(txn.amount, cur)}",
        f"Paid:       {fmt(txn.paid, cur)} ({METHOD_TEXT.get(txn.method, txn.method)})",
    ]
    if txn.payment_ref:
        lines.append(f"Payment ref: {txn.payment_ref}")
    lines.append(f"Credited:   {fmt(txn.credited, cur)}")
    if txn.operator_ref:
        lines.append(f"Operator ref: {txn.operator_ref}")
    if txn.refunded:
        lines.append(f"Reversed:   {fmt(txn.refunded, cur)}")
    lines += ["-" * 32, f"STATUS: {STATUS_TEXT.get(txn.outcome, '')}" if txn.outcome else ""]
    if txn.voucher_code:
        amount = txn.voucher or (txn.paid - txn.credited)
        lines += [
            f"VOUCHER {fmt(amount, cur)}",
            pretty(txn.voucher_code),
            "Use it as payment at any of our kiosks." if not txn.voucher_held
            else "Valid only if this top-up finally fails.",
        ]
    lines += ["-" * 32, f"Help: {support}", "Scan the code to check this top-up."]
    return Receipt([ln for ln in lines if ln], qr=f"TOPUP:{txn.ref}")
