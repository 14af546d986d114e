"""An X or Z report (kiosk.reports.Report) as text for the 42-column receipt printer and a
terminal. ASCII only: printers' built-in fonts have nothing else. Money is printed with
`money.fmt` from int minor units, never through a float."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from .money import fmt

if TYPE_CHECKING:
    from .report_model import Count, Report

WIDTH = 42                      # the receipt printer's columns (Font A on 80 mm paper)


def when(ts: float | None, tz: str) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).astimezone(ZoneInfo(tz)).strftime(
        "%Y-%m-%d %H:%M:%S")


def _lr(left: str, right: str, width: int = WIDTH) -> list[str]:
    """`left` and `right` on one line of `width`, or on two when they do not fit."""
    if len(left) + 1 + len(right) <= width:
        return [left + " " * (width - len(left) - len(right)) + right]
    return [left[:width], right.rjust(width)[-width:]]


def _wrap(text: str, width: int = WIDTH) -> list[str]:
    return textwrap.wrap(text, width, initial_indent="- ", subsequent_indent="  ",
                         break_long_words=True, break_on_hyphens=False) or ["-"]


def format_report(rep: Report, tz: str = "UTC", width: int = WIDTH) -> str:
    cur = rep.currency

    def money(v: int) -> str:
        return fmt(v, cur)

    def row(label: str, c: Count | None = None) -> list[str]:
        return _lr(label, "" if c is None else f"{c.count:>4}  {money(c.amount):>16}", width)

    def counted(label: str, n: int, amount: int) -> list[str]:
        return _lr(label, f"{n:>4}  {money(amount):>16}", width)

    def notes(m: dict[int, int]) -> list[str]:
        return [ln for v, n in sorted(m.items())
                for ln in _lr(f"  {money(v)} x {n}", money(v * n), width)]

    rule, double = "-" * width, "=" * width
    title = f"Z REPORT #{rep.number}" if rep.closed else "X REPORT (not closed)"
    out = [double, title.center(width).rstrip(), double]
    out += _lr("Kiosk", rep.kiosk_id, width)
    out += _lr("From", when(rep.from_ts, tz), width)
    out += _lr("To", when(rep.to_ts, tz), width)
    out += _lr("Time zone", tz, width)
    out += _lr("Journal seq", f"{rep.from_seq + 1}..{rep.to_seq}"
               if rep.to_seq > rep.from_seq else "(no events)", width)
    out += (_lr("Closed by", rep.closed_by or "-", width) if rep.closed
            else _lr("Next Z", f"#{rep.number}", width))

    c = rep.cash
    out += [rule, "CASH IN (notes)"]
    out += notes(c.notes)
    out += counted("  Total", c.count, c.total)
    if c.orphan.count:
        out += row("  of which orphan", c.orphan)
    if c.in_doubt.count:
        out += row("  of which in doubt", c.in_doubt)
    if c.at_power_up.count:
        out += row("  power-up notes*", c.at_power_up)
        out += ["  * in the stacker, credited to nobody,", "    not in the total"]

    out += [rule, "PAYMENTS"]
    out += row("QR wallet", rep.qr)
    out += row("Card approved", rep.card_approved)
    out += row("Card reversed", rep.card_reversed)
    if rep.card_reversal_failed.count:
        out += row("Card reversal failed", rep.card_reversal_failed)
    out += _lr("Money in (net)", money(rep.money_in), width)
    out += row("Late payments", rep.late_payments)

    v = rep.vouchers
    out += [rule, "VOUCHERS"]
    out += row("Issued", v.issued)
    out += row("Held (pending)", v.held)
    if v.activated.count or v.voided.count:
        out += row("Held -> valid", v.activated)
        out += row("Held -> void", v.voided)
    out += row("Redeemed", v.redeemed)

    t = rep.topups
    out += [rule, "TOP-UPS"]
    out += counted("Credited", t.count, t.credited)
    out += ["Closed, by outcome (count, paid):"]
    for g in t.by_outcome:
        out += counted(f"  {g.outcome}", g.count, g.paid)
    for name, gs in (("By operator:", t.by_operator), ("By product:", t.by_product),
                     ("By kind:", t.by_kind)):
        if gs:
            out += [name]
            for grp in gs:
                out += counted(f"  {grp.key}", grp.count, grp.amount)

    x = rep.transactions
    out += [rule, "TRANSACTIONS"]
    out += _lr("Opened / closed", f"{x.opened} / {x.closed}", width)
    out += _lr("Still open", str(len(x.open_refs)), width)
    out += [f"  {ref}" for ref in x.open_refs]

    b = rep.cash_box
    out += [rule, "CASH BOX NOW"]
    out += _lr("  since", when(b.since_ts, tz) if b.since_seq else "journal start", width)
    out += notes(b.notes)
    out += counted("  Total", b.count, b.total)
    if b.at_power_up.count:
        out += row("  + power-up notes*", b.at_power_up)
        out += ["  * in the stacker, credited to nobody"]
    if b.removed_pending:
        out += ["  ** BOX REMOVED - NO BOX IN **",
                f"  by {b.removed_by} at {when(b.removed_ts, tz)}",
                "  cash payments must stay disabled"]
    if rep.box_events:
        out += ["Box changes in the period:"]
        for e in rep.box_events:
            out += _lr(f"  {e.kind} by {e.by}", when(e.ts, tz), width)
            if e.kind != "removed":
                continue
            out += _lr("    expected", money(e.expected or 0), width)
            out += _lr("    counted", "not entered" if e.counted is None
                       else money(e.counted), width)
            if e.difference is not None:
                sign = "+" if e.difference > 0 else ""
                label = "    difference" + ("" if e.difference == 0 else
                                            " (over)" if e.difference > 0 else " (short)")
                out += _lr(label, sign + money(e.difference), width)
            if e.power_up_notes:
                out += [f"    + {e.power_up_notes} note(s) found at power-up"]

    out += [rule]
    if rep.discrepancies:
        out += [f"DISCREPANCIES ({len(rep.discrepancies)})"]
        for d in rep.discrepancies:
            out += _wrap(d, width=width)
    else:
        out += ["Discrepancies: none"]
    out += [double]
    return "\n".join(out) + "\n"
