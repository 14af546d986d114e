"""The receipt: what the customer takes away, printed and shown on screen.

Printed in English (receipt printers' built-in fonts have no CJK); the screen shows the
same facts in the customer's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .catalog import Catalog, mask_number
from .engine import Outcome, Txn
from .i18n import N_
from .money import fmt
from .vouchers import pretty

STATUS_TEXT = {
    Outcome.SUCCESS: N_("SUCCESS"),
    Outcome.FAILED_VOUCHER: N_("NOT TOPPED UP - VOUCHER ISSUED"),
    Outcome.FAILED_REFUNDED: N_("NOT TOPPED UP - CARD PAYMENT REVERSED"),
    Outcome.CANCELLED: N_("CANCELLED"),
    Outcome.PENDING: N_("PENDING - KEEP THIS RECEIPT"),
}

METHOD_TEXT = {"cash": N_("Cash"), "qr": N_("QR wallet"), "card": N_("Bank card"),
               "voucher": N_("Voucher")}

# Facts whose value is itself one of the texts above, translated on screen.
TRANSLATED_VALUES = ("Status", "Paid with")


@dataclass(frozen=True)
class Receipt:
    facts: list[tuple[str, str]]     # (English label, value): the screen translates labels
    lines: list[str]                 # the printed text
    qr: str                          # what the receipt's QR code holds


def build(txn: Txn, catalog: Catalog, *, kiosk_id: str, site: str, support: str,
          tz: str, now: float, voucher_expires: str = "") -> Receipt:
    """`voucher_expires`: the last day the transaction's voucher can be used (ISO date, as
    journaled), "" if it has none or never expires."""
    cur = catalog.currency
    when = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(tz))
    op = catalog.operator(txn.operator).name if txn.operator else ""
    try:
        product = catalog.product(txn.product_id).name
    except KeyError:
        product = txn.product_id
    facts: list[tuple[str, str]] = [
        (N_("Reference"), txn.ref or ""),
        (N_("Date"), when.strftime("%Y-%m-%d %H:%M:%S %Z")),
        (N_("Kiosk"), kiosk_id),
        (N_("Number"), mask_number(txn.msisdn, "*")),
        (N_("Operator"), op),
        (N_("Product"), product),
        (N_("Price"), fmt(txn.amount, cur)),
        (N_("Paid"), fmt(txn.paid, cur)),
        (N_("Paid with"), METHOD_TEXT.get(txn.method, txn.method)),
    ]
    if txn.payment_ref:
        facts.append((N_("Payment ref."), txn.payment_ref))
    for code, amount in txn.vouchers_in:
        facts.append((N_("Voucher used"), f"...{code[-4:]} {fmt(amount, cur)}"))
    if txn.card_receipt_no:
        facts.append((N_("Card receipt no."), txn.card_receipt_no))
    facts.append((N_("Credited"), fmt(txn.credited, cur)))
    if txn.operator_ref:
        facts.append((N_("Operator ref."), txn.operator_ref))
    if txn.refunded:
        facts.append((N_("Reversed"), fmt(txn.refunded, cur)))
    if txn.outcome:
        facts.append((N_("Status"), STATUS_TEXT[txn.outcome]))
    if txn.voucher_code:
        amount = txn.voucher or (txn.paid - txn.credited)
        facts.append((N_("Voucher"), pretty(txn.voucher_code)))
        facts.append((N_("Voucher value"), fmt(amount, cur)))
        if voucher_expires:
            facts.append((N_("Valid until"), voucher_expires))
    facts.append((N_("Help"), support))

    rule = "-" * 32
    lines = ["PREPAID TOP-UP", site, when.strftime("UTC%z"), rule]
    lines += [f"{label}: {value}" for label, value in facts if value]
    if txn.voucher_code:
        lines.append("Use the voucher as payment at any of our kiosks." if not txn.voucher_held
                     else "The voucher is valid only if this top-up finally fails.")
    if txn.payment_lines:
        # The card terminal's own receipt (customer copy), as it sent it.
        lines += [rule, *txn.payment_lines]
    if txn.voucher_code and not txn.voucher_held:
        # The code the customer needs next: the voucher, read back by the kiosk's scanner.
        lines += [rule, "Scan the code at the kiosk to pay with the voucher."]
        return Receipt(facts, lines, qr=txn.voucher_code)
    lines += [rule, "Scan the code to check this top-up."]
    return Receipt(facts, lines, qr=f"TOPUP:{txn.ref}")


VOUCHER_STATUS_TEXT = {"active": "", "held": "HELD - valid only if its top-up fails",
                       "redeemed": "USED", "void": "VOID"}


def voucher_slip(v: dict[str, Any], *, currency: str, kiosk_id: str, site: str,
                 support: str, tz: str, now: float, today: str) -> Receipt:
    """A voucher's slip, reprinted by a technician (`kiosk voucher reprint`): the code in
    full, its value and expiry, as the customer's receipt has them. `v` is a row of
    Journal.find_vouchers; `today` the local ISO date (an expired voucher says so)."""
    when = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(tz))
    code, expires = str(v["code"]), str(v.get("expires") or "")
    status = VOUCHER_STATUS_TEXT.get(str(v["status"]), str(v["status"]).upper())
    if not status and expires and expires < today:
        status = "EXPIRED"
    facts: list[tuple[str, str]] = [
        (N_("Reference"), str(v["ref"])),
        (N_("Date"), when.strftime("%Y-%m-%d %H:%M:%S %Z")),
        (N_("Kiosk"), kiosk_id),
        (N_("Voucher"), pretty(code)),
        (N_("Voucher value"), fmt(int(v["amount"]), currency)),
        (N_("Valid until"), expires),
        (N_("Status"), status),
        (N_("Help"), support),
    ]
    rule = "-" * 32
    lines = ["PREPAID TOP-UP", site, "VOUCHER (REPRINT)", rule]
    lines += [f"{label}: {value}" for label, value in facts if value]
    usable = v["status"] == "active" and not (expires and expires < today)
    if usable:
        lines += ["Use the voucher as payment at any of our kiosks.", rule,
                  "Scan the code at the kiosk to pay with the voucher."]
        return Receipt(facts, lines, qr=code)
    return Receipt(facts, lines, qr=f"TOPUP:{v['ref']}")
