"""Voucher codes typed or scanned: refusals slow the next try down.

A code has 15 random digits and a check digit, so guessing is hopeless; still, a kiosk
must not be a free oracle for codes read off someone's receipt photo, nor let a stuck
scanner hammer the journal. The first `free_tries` refusals cost nothing; each one after
that makes the kiosk wait twice as long before it looks at another code (5 s, 10 s, 20 s,
... at most 5 minutes). A redeemed voucher, or a quiet `quiet_s` with no refusal, starts
the count again. Every refusal is logged with the code's last four digits only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("kiosk.vouchers")


class VoucherGuard:
    def __init__(self, free_tries: int = 3, base_s: float = 5.0, max_s: float = 300.0,
                 quiet_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free_tries, self.base_s, self.max_s, self.quiet_s = free_tries, base_s, max_s, quiet_s
        self.clock = clock
        self.refusals = 0
        self.last_refusal = -1e18
        self.blocked_until = -1e18

    def wait_left(self) -> float:
        """Seconds before another code may be looked at (0: now)."""
        now = self.clock()
        if now - self.last_refusal > self.quiet_s:
            self.refusals = 0
        return max(0.0, self.blocked_until - now)

    def refused(self, code: str, reason: str) -> None:
        now = self.clock()
        if now - self.last_refusal > self.quiet_s:
            self.refusals = 0
        self.refusals += 1
        self.last_refusal = now
        over = self.refusals - self.free_tries
        if over > 0:
            wait = min(self.max_s, self.base_s * 2 ** (over - 1))
            self.blocked_until = now + wait
            log.warning("voucher refused (%s): ...%s; %d refusals in a row, next code in %.0f s",
                        reason, code[-4:], self.refusals, wait)
        else:
            log.warning("voucher refused (%s): ...%s", reason, code[-4:])

    def redeemed(self) -> None:
        self.refusals = 0
        self.blocked_until = -1e18
