"""What the terminal said to one command (`Run`), and the CardResult the driver reads from it.

Pure: no port, no clock. `terminal.py` fills a Run while it follows a command; the functions
here decide what it means for the kiosk.

A payment (06 01)::

    84 xx to the command                         "offline" (nothing happened)
    04 0F approved, then 06 0F                   approved (the amount the terminal approved)
    04 0F approved, then no 06 0F (silence,      "not_completed", approved=False, with the
      the port lost, or a 06 1E)                   approval's receipt no, auth code, amount
    06 1E 6C (no approval)                       "aborted"
    06 1E other, or 04 0F declined then 06 0F    "declined"
    nothing final, no approval seen              "unknown"

"not_completed" is never "unknown": the terminal did approve, so the money may be on the
card. The caller asks the terminal (`last_result`) whether the approval stands, and reverses
it if not or if it cannot use it.

A reversal (06 30): approved when the terminal reversed it (04 0F, 06 0F), and also when it
answers "already reversed" (B4, as 84 B4 or as 06 1E B4): the money is back on the card
either way. B5 "reversal not possible", any other refusal: "declined".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..base import CardResult
from . import zvt

NOT_COMPLETED = "not_completed"


@dataclass(frozen=True)
class ZvtResult(CardResult):
    """A CardResult as the ZVT driver makes it (card_last4 filled from BMP 22)."""


@dataclass
class Run:
    """What the terminal said to one command."""
    accepted: bool | None = None                 # 80 00 00 / 84 xx / nothing yet
    refused: int | None = None                   # the code of 84 xx
    texts: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    status: zvt.StatusInformation | None = None
    completion: zvt.Completion | None = None
    abort_code: int | None = None                # 06 1E
    abort_sent: bool = False
    lost: Exception | None = None                # the line failed after the command went
    uncommitted: bool = False                    # an approval the kiosk could not journal
    last_message: float = 0.0                    # monotonic time of the terminal's last APDU

    @property
    def ended(self) -> bool:
        return self.completion is not None or self.abort_code is not None

    @property
    def approval(self) -> zvt.StatusInformation | None:
        """The approved status information of a payment (not a reversal's), if one came."""
        s = self.status
        return s if s is not None and s.approved and not s.reversal else None


def _base(run: Run, amount: int, terminal_id: str) -> ZvtResult:
    return ZvtResult(False, amount, text=run.texts[-1] if run.texts else "",
                     lines=tuple(run.lines), terminal_id=terminal_id)


def payment_result(run: Run, amount: int, terminal_id: str) -> ZvtResult:
    base = _base(run, amount, terminal_id)
    if run.accepted is False:
        return replace(base, reason="offline", result_code=run.refused,
                       text="the terminal refused the payment")
    s = run.status
    if s is not None:
        base = replace(base, trace=s.trace, receipt_no=s.receipt_no, card_name=s.card_name,
                       result_code=s.result_code, terminal_id=s.terminal_id or terminal_id,
                       card_last4=s.card_last4)
    if (approval := run.approval) is not None:
        # Approved for another amount: reported as it is; the kiosk reverses it.
        base = replace(base, auth_code=approval.auth_code,
                       amount=amount if approval.amount is None else approval.amount)
        if run.completion is not None:
            return replace(base, approved=True)
        why = "the line was lost" if run.lost is not None else (
            f"06 1E {run.abort_code:02X} after it" if run.abort_code is not None
            else "no completion came")
        return replace(base, reason=NOT_COMPLETED,
                       text=f"approved with receipt {approval.receipt_no or '?'}, "
                            f"not completed: {why}")
    if run.abort_code is not None:
        reason = "aborted" if run.abort_code == zvt.RESULT_ABORTED else "declined"
        return replace(base, reason=reason, result_code=run.abort_code)
    if run.completion is not None and s is not None:
        return replace(base, reason="declined")
    return replace(base, reason="unknown")       # no end, or no result


def reversal_result(run: Run, amount: int, terminal_id: str) -> ZvtResult:
    base = _base(run, amount, terminal_id)
    refusal = run.refused if run.accepted is False else run.abort_code
    s = run.status
    if refusal == zvt.RESULT_ALREADY_REVERSED:
        # Reversed before (by us, or by the terminal itself when the approval was never
        # confirmed or completed): the money is back on the card either way.
        return replace(base, approved=True, result_code=refusal, text="already reversed")
    if refusal is not None:
        return replace(base, reason="declined", result_code=refusal)
    if run.completion is not None and s is not None and s.approved:
        return replace(base, approved=True, trace=s.trace, receipt_no=s.receipt_no,
                       result_code=s.result_code, card_name=s.card_name,
                       card_last4=s.card_last4)
    return replace(base, reason="unknown")
