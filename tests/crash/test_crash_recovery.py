"""Kill the kiosk with SIGKILL after every journal write of every payment path, restart it,
and check the world's ledgers against the journal (tests/crash/harness.py).

Paths: cash, card and QR x top-up success, failure, UNKNOWN-then-success (the reply is lost
after the credit) and UNKNOWN-then-failure (the request never reached the operator). For
each path a clean run counts its journal writes W; then for N = 1..W the kiosk is killed
right after write N, restarted to recover, and nothing may be lost or doubled: notes in the
cash box = notes journaled, no reference credited twice, every transaction closed with
paid = credited + voucher + reversed, the terminal's and the wallet's books equal the
journal's. `KIOSK_CRASH_ROUNDS=n` repeats every path n times (the longer soak variant).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.crash.harness import BACKEND_MODE, Path_, Rig

PATHS = [Path_(m, o) for m in ("cash", "card", "qr")
         for o in ("success", "failure", "unknown_success", "unknown_failure")]


def crash_every_write(p: Path_, rounds: int) -> tuple[int, list[str]]:
    """-> (crash points covered, violations found)."""
    with tempfile.TemporaryDirectory(prefix=f"crash-{p.name}-") as d:
        rig = Rig(Path(d))
        covered, found = 0, []
        try:
            def attempt(crash_after: int) -> int:
                rig.aggregator.set_mode(BACKEND_MODE[p.outcome])
                rig.start_hands(p)
                r = rig.run(p.customer, crash_after=crash_after)
                rig.stop_hands()                       # the customer walks away
                rig.aggregator.set_mode("succeed")     # the network recovers meanwhile
                if crash_after:
                    assert r.returncode == -9, (p.name, crash_after, r.output)
                    back = rig.run()                   # power back: recovery only
                    assert back.returncode == 0, (p.name, crash_after, back.output)
                else:
                    assert r.returncode == 0, (p.name, r.output)
                for v in rig.violations():
                    found.append(f"{p.name} crash after write {crash_after}: {v}")
                return int(r.summary.get("writes", 0))

            for _ in range(rounds):
                writes = attempt(0)
                assert writes > 3, (p.name, writes)
                for n in range(1, writes + 1):
                    attempt(n)
                    covered += 1
        finally:
            rig.close()
        return covered, found


def test_no_money_lost_or_doubled_whenever_the_power_goes() -> None:
    rounds = int(os.environ.get("KIOSK_CRASH_ROUNDS", "1"))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: crash_every_write(p, rounds), PATHS))
    covered = sum(c for c, _ in results)
    violations = [v for _, vs in results for v in vs]
    print(f"\ncrash harness: {covered} crash points over {len(PATHS)} paths x {rounds} "
          f"round(s) in {time.monotonic() - started:.0f} s; {len(violations)} violations")
    for (c, _), p in zip(results, PATHS):
        print(f"  {p.name:<24} {c:>3} crash points")
    assert not violations, "\n".join(violations)
    assert covered >= 100
