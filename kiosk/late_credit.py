"""Late credits: a top-up the provider commits after its transaction closed as failed.

A transaction closes as failed when the provider refused the top-up or did not have it
past the not-found window (kiosk/calls_backend.py); the customer then holds a voucher, or
had the card payment reversed. A provider may still commit it later (a queue, a slow
operator link, a failure it revises). So for `late_check_hours` (default 48) after such a
close, `watch` asks the provider again, with back-off: first at the next round (every
`late_check_interval_s`, default 300 s), then each wait doubles up to
`late_check_max_interval_s` (default 6 h). When the provider says SUCCESSFUL:

- a LateCredit is journaled (kiosk/ledger.py posts it: the top-up credited, the unused
  voucher value cancelled, and what the customer got back as well, "to recover"),
- in the same write, the transaction's unused voucher is voided (SetVoucherStatus void;
  or reduced to the change when the customer paid more than the top-up), so it can no
  longer be redeemed (Journal.enter_late_credit: no redemption can come in between),
- if the customer got the money back already (the voucher redeemed, the card reversed), an
  ALERT is logged and the transaction is listed by `kiosk journal list --unresolved`
  (kiosk/reconcile.py) for the operator to recover the amount or write it off.

The back-off state is kept in memory: after a restart every candidate is asked once more at
the first round, then backs off again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from . import events as ev
from .backend.base import TopUpStatus
from .money import fmt

if TYPE_CHECKING:
    from .journal import TxnRow
    from .runtime import Runtime

log = logging.getLogger("kiosk.late_credit")

_CANDIDATES = (
    "SELECT DISTINCT t.ref FROM events e INDEXED BY events_kind JOIN transactions t"
    " ON t.ref = e.ref WHERE e.kind = 'TopUpFailed' AND e.ts > ? AND t.status = 'closed'"
    " AND t.outcome IN ('failed_voucher', 'failed_refunded') AND t.closed_ts > ?"
    " AND NOT EXISTS (SELECT 1 FROM events l INDEXED BY events_ref WHERE l.ref = t.ref"
    " AND l.kind = 'LateCredit') ORDER BY t.number")


def candidates(rt: Runtime, now: float | None = None) -> list[str]:
    """Transactions closed as failed after a top-up failure within the last
    late_check_hours, with no late credit yet, oldest first."""
    since = (time.time() if now is None else now) - rt.settings.late_check_hours * 3600
    return [r[0] for r in rt.journal.db.execute(_CANDIDATES, (since, since))]


def asked_amount(rt: Runtime, row: TxnRow) -> int:
    """What the top-up asked the provider to credit (its TopUp; the price without one)."""
    found = rt.journal.db.execute(
        "SELECT json_extract(data, '$.amount') FROM events INDEXED BY events_ref"
        " WHERE ref = ? AND kind = 'TopUp' ORDER BY seq DESC LIMIT 1", (row.ref,)).fetchone()
    return int(found[0]) if found and found[0] is not None else row.amount


def plan(row: TxnRow, vouchers: list[dict[str, Any]], amount: int,
         operator_ref: str) -> list[ev.Record]:
    """The records of a late credit of `amount` on closed transaction `row` (pure).
    `vouchers`: the vouchers of its reference as they are now. The vouchers of the failure
    are those issued up to its close (a late payment's come after); an unused one gives
    back its value up to the amount credited (void, or reduced to the change)."""
    ref = row.ref
    closed = row.closed_ts if row.closed_ts is not None else float("inf")
    mine = [v for v in vouchers if float(v["issued_ts"]) <= closed]
    left, cancelled, code = amount, 0, ""
    out: list[ev.Record] = []
    for v in sorted(mine, key=lambda v: v["status"] != "active"):     # unused ones first
        code = code or str(v["code"])
        if v["status"] != "active" or not left:
            continue
        take = min(left, int(v["amount"]))
        rest = int(v["amount"]) - take
        out.append(ev.SetVoucherStatus(ref, v["code"], "void") if rest == 0 else
                   ev.SetVoucherStatus(ref, v["code"], "active", amount=rest))
        left -= take
        cancelled += take
        code = str(v["code"])
    if not left:
        how = "voucher_unused"
    elif any(v["status"] == "redeemed" for v in mine):
        how = "voucher_redeemed"
    elif row.refunded:
        how = "card_reversed"
    elif mine:
        how = "voucher_gone"
    else:
        how = "nothing_paid"
    credit = ev.LateCredit(ref, operator_ref, amount, code, cancelled, left, how)
    return [credit, *out]


def settle(rt: Runtime, ref: str, operator_ref: str) -> ev.LateCredit | None:
    """Journal the late credit of closed transaction `ref` (once): the LateCredit and the
    void of its unused voucher in one write. Returns the LateCredit, None if there was
    one already."""
    row = rt.journal.transaction(ref)
    if row is None or row.status != "closed":
        return None
    amount = asked_amount(rt, row)
    records = rt.journal.enter_late_credit(
        ref, lambda vouchers: plan(row, vouchers, amount, operator_ref))
    credit = next((r for r in records if isinstance(r, ev.LateCredit)), None)
    if credit is None:
        return None
    cur = rt.settings.currency
    voucher = f"voucher ...{credit.voucher_code[-4:]}" if credit.voucher_code else "no voucher"
    if credit.to_recover:
        log.error("ALERT late credit on %s: the provider credited %s (operator ref %s) after"
                  " the transaction closed as failed, and the customer got it back already"
                  " (%s, %s): recover %s or write it off", ref, fmt(credit.amount, cur),
                  operator_ref or "-", credit.how, voucher, fmt(credit.to_recover, cur))
    else:
        log.warning("late credit on %s: the provider credited %s (operator ref %s) after the"
                    " transaction closed as failed; %s cancelled (%s)", ref,
                    fmt(credit.amount, cur), operator_ref or "-", voucher,
                    fmt(credit.cancelled, cur))
    return credit


async def check(rt: Runtime, ref: str) -> bool:
    """Ask the provider about `ref` once; settle a success. True when settled."""
    try:
        # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a cancel that
        # lands as the call completes, and this loop would then outlive the kiosk's stop.
        async with asyncio.timeout(rt.settings.backend_timeout_s):
            answer = await rt.backend.status(ref)
    except Exception as exc:    # noqa: BLE001 - no answer: ask again later
        log.info("late check of %s: no answer (%s)", ref, type(exc).__name__)
        return False
    if answer.status is not TopUpStatus.SUCCESSFUL:
        return False
    settle(rt, ref, answer.operator_ref)
    return True


async def watch(rt: Runtime) -> None:
    """The periodic late check (spawned by Runtime.start; runs until the kiosk stops)."""
    loop = asyncio.get_running_loop()
    due: dict[str, tuple[float, float]] = {}     # ref -> (next ask, monotonic; wait)
    while True:
        interval = rt.settings.late_check_interval_s       # [backend] late_check_*
        longest = rt.settings.late_check_max_interval_s
        try:
            refs = candidates(rt)
        except Exception:
            log.exception("late check: cannot read the journal")
            refs = []
        due = {ref: due.get(ref, (0.0, interval)) for ref in refs}
        for ref, (at, wait) in list(due.items()):
            if at > loop.time():
                continue
            try:
                if await check(rt, ref):
                    due.pop(ref)
                    continue
            except Exception:
                log.exception("late check of %s failed", ref)
            due[ref] = (loop.time() + wait, min(wait * 2, longest))
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError      # a cancel lost on the way: stop all the same
        await asyncio.sleep(interval)
