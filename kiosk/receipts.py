"""The receipt: what the customer takes away, printed and shown on screen.

Printed in the customer's language when it is written in Latin script (Filipino), else in
English: receipt printers' built-in fonts have no CJK. The screen shows the same facts
(`Receipt.facts`, English labels) translated into the customer's language.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .catalog import Catalog, mask_number
from .engine import Outcome, Txn
from .i18n import N_, load
from .linebreak import strip_marks
from .money import fmt
from .vouchers import pretty

HEADING = N_("PREPAID TOP-UP")
REPRINT = N_("VOUCHER (REPRINT)")
PAY_WITH_VOUCHER = N_("Use the voucher as payment at any of our kiosks.")
HELD_VOUCHER = N_("The voucher is valid only if this top-up finally fails.")
SCAN_VOUCHER = N_("Scan the code at the kiosk to pay with the voucher.")
SCAN_TOPUP = N_("Scan the code to check this top-up.")
RULE = "-" * 32

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

VOUCHER_STATUS_TEXT = {"active": "", "held": N_("HELD - valid only if its top-up fails"),
                       "redeemed": N_("USED"), "void": N_("VOID")}
EXPIRED = N_("EXPIRED")
LABELS = ("Reference", "Date", "Kiosk", "Number", "Operator", "Product", "Price", "Paid",
          "Paid with", "Payment ref.", "Voucher used", "Card receipt no.", "Credited",
          "Operator ref.", "Reversed", "Status", "Voucher", "Voucher value", "Valid until",
          "Help")


def _latin(text: str) -> bool:
    """Printable with a receipt printer's code pages: Latin letters and punctuation."""
    return all(ord(c) < 0x250 or 0x1E00 <= ord(c) <= 0x1EFF or 0x2000 <= ord(c) <= 0x206F
               or c == "€" for c in text)


@functools.cache
def paper_language(lang: str) -> str:
    """The language a receipt for a `lang` customer is printed in."""
    return lang if lang != "en" and printed_language(lang) is not str else "en"


def printed_language(lang: str) -> Callable[[str], str]:
    """The translation a receipt is printed with: `lang`'s when every printed text of it
    is Latin script, else English (the source texts)."""
    try:
        tr = load(lang).gettext
    except FileNotFoundError:
        return str
    texts = [HEADING, REPRINT, PAY_WITH_VOUCHER, HELD_VOUCHER, SCAN_VOUCHER, SCAN_TOPUP,
             EXPIRED, *STATUS_TEXT.values(), *METHOD_TEXT.values(),
             *VOUCHER_STATUS_TEXT.values(), *LABELS]
    if not all(_latin(tr(t)) for t in texts if t):
        return str
    return lambda text: strip_marks(tr(text))


def _printed(facts: list[tuple[str, str]], tr: Callable[[str], str],
             translated: tuple[str, ...]) -> list[str]:
    """The facts as printed lines: labels (and `translated` facts' values) in the receipt's
    language, empty facts left out."""
    return [f"{tr(label)}: {tr(value) if label in translated else value}"
            for label, value in facts if value]


@dataclass(frozen=True)
class Receipt:
    facts: list[tuple[str, str]]     # (English label, value): the screen translates labels
    lines: list[str]                 # the printed text
    qr: str                          # what the receipt's QR code holds


def build(txn: Txn, catalog: Catalog, *, kiosk_id: str, site: str, support: str,
          tz: str, now: float, voucher_expires: str = "", lang: str = "en") -> Receipt:
    """`voucher_expires`: the last day the transaction's voucher can be used (ISO date, as
    journaled), "" if it has none or never expires. `lang`: the customer's language, the
    printed one if the printer can (printed_language)."""
    cur = catalog.currency
    tr = printed_language(lang)
    printed_lang = lang if tr is not str else "en"
    when = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(tz))
    op = catalog.operator(txn.operator).name if txn.operator else ""
    try:
        item = catalog.product(txn.product_id)
        product, printed_product = item.name, strip_marks(item.label(printed_lang))
    except KeyError:
        product = printed_product = txn.product_id
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

    shown = [(label, printed_product if label == "Product" else value)
             for label, value in facts]
    lines = [tr(HEADING), site, when.strftime("UTC%z"), RULE]
    lines += _printed(shown, tr, TRANSLATED_VALUES)
    if txn.voucher_code:
        lines.append(tr(PAY_WITH_VOUCHER if not txn.voucher_held else HELD_VOUCHER))
    if txn.payment_lines:
        # The card terminal's own receipt (customer copy), as it sent it.
        lines += [RULE, *txn.payment_lines]
    if txn.voucher_code and not txn.voucher_held:
        # The code the customer needs next: the voucher, read back by the kiosk's scanner.
        lines += [RULE, tr(SCAN_VOUCHER)]
        return Receipt(facts, lines, qr=txn.voucher_code)
    lines += [RULE, tr(SCAN_TOPUP)]
    return Receipt(facts, lines, qr=f"TOPUP:{txn.ref}")


def voucher_slip(v: dict[str, Any], *, currency: str, kiosk_id: str, site: str,
                 support: str, tz: str, now: float, today: str, lang: str = "en") -> Receipt:
    """A voucher's slip, reprinted by a technician (`kiosk voucher reprint`): the code in
    full, its value and expiry, as the customer's receipt has them. `v` is a row of
    Journal.find_vouchers; `today` the local ISO date (an expired voucher says so); `lang`
    as for build."""
    tr = printed_language(lang)
    when = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(tz))
    code, expires = str(v["code"]), str(v.get("expires") or "")
    status = VOUCHER_STATUS_TEXT.get(str(v["status"]), str(v["status"]).upper())
    if not status and expires and expires < today:
        status = EXPIRED
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
    lines = [tr(HEADING), site, tr(REPRINT), RULE]
    lines += _printed(facts, tr, ("Status",))
    usable = v["status"] == "active" and not (expires and expires < today)
    if usable:
        lines += [tr(PAY_WITH_VOUCHER), RULE, tr(SCAN_VOUCHER)]
        return Receipt(facts, lines, qr=code)
    return Receipt(facts, lines, qr=f"TOPUP:{v['ref']}")
