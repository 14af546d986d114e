"""Restart recovery: how long a kiosk takes to resume N unfinished transactions.

    .venv/bin/python benchmarks/recovery.py [-n 1000] [--rounds 3] [--smoke]

A journal is written with N open transactions left as a crash leaves them (a third paid in
cash with the top-up asked for and no answer, a third paid in cash mid-payment, a third
paid by card with the top-up asked for), then a Runtime with in-process simulated devices
and an instant simulated provider starts on it. Printed, as medians over the rounds:
`recover()` (rebuild every transaction from the journal, journal RecoveryStarted, start its
background session) and the time until every transaction is closed. Aim: recover() <= 1 s
at 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.simulated import (SimulatedBillAcceptor, SimulatedCardTerminal,  # noqa: E402
                               SimulatedPrinter, SimulatedSimReader)
from kiosk import config  # noqa: E402
from kiosk import events as ev  # noqa: E402
from kiosk.backend.simulated import SimulatedBackend  # noqa: E402
from kiosk.engine import Txn  # noqa: E402
from kiosk.journal import Journal  # noqa: E402
from kiosk.payments.simulated import SimulatedWallet  # noqa: E402
from kiosk.runtime import Runtime  # noqa: E402

NUMBER = "09171234567"


def write_journal(settings: config.Settings, n: int) -> list[str]:
    """Returns the references whose top-up reached the provider before the crash."""
    reached = []
    j = Journal(settings.journal_path, settings.kiosk_id, settings.currency)
    j.db.execute("PRAGMA synchronous=OFF")          # set-up only: the kiosk writes FULL
    for i in range(n):
        method = "card" if i % 3 == 2 else "cash"
        ref = j.open_transaction(Txn(msisdn=NUMBER, operator="globe", product_id="globe-load",
                                     amount=5000, method=method))
        if method == "card":
            j.append(ref, ev.AuthoriseCard(ref, 5000))
            j.append(ref, ev.CardApproved(ref, 5000, "123456", f"{i:06d}", f"{i:04d}",
                                          "Mastercard", "52500038"))
        else:
            j.append(ref, ev.NoteEscrowed(5000, f"b:{i}"))
            j.append(ref, ev.StackNote(5000, f"b:{i}"))
            j.append(ref, ev.NoteCredited(5000, f"b:{i}"))
        if i % 3 != 1:
            j.append(ref, ev.TopUp(ref, NUMBER, "globe", "globe-load", 5000))
            reached.append(ref)
    j.close()
    return reached


async def one_round(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        s = config.load(data_dir=Path(d))
        s = replace(s, query_interval_s=0.0, backend_timeout_s=5)
        reached = write_journal(s, n)
        backend = SimulatedBackend(delay_s=0.0)
        backend.ledger.update(dict.fromkeys(reached, 5000))
        devices = {"sim_reader": SimulatedSimReader(), "printer": SimulatedPrinter(delay_s=0),
                   "cash": SimulatedBillAcceptor(s.cash_denominations, delay_s=0),
                   "card": SimulatedCardTerminal(delay_s=0), "backend": backend,
                   "wallet": SimulatedWallet(s.currency, delay_s=0)}
        rt = Runtime(s, devices=devices)
        rt.loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        refs = rt.recover()
        t_recover = time.perf_counter() - t0
        assert len(refs) == n, (len(refs), n)
        while rt.background:
            await asyncio.sleep(0.01)
        t_settled = time.perf_counter() - t0
        assert rt.journal.unresolved() == []
        await rt.stop()
        return t_recover, t_settled


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--smoke", action="store_true",
                   help="30 transactions, 1 round (a test that it runs, no figure to keep)")
    a = p.parse_args()
    if a.smoke:
        a.n, a.rounds = 30, 1
    logging.basicConfig(level=logging.ERROR)
    rec, settled = [], []
    for _ in range(a.rounds):
        r, s = asyncio.run(one_round(a.n))
        rec.append(r)
        settled.append(s)
    print(f"recovery of {a.n} unfinished transactions ({a.rounds} rounds, medians):")
    print(f"  recover()            {statistics.median(rec) * 1000:8.0f} ms"
          f"   ({statistics.median(rec) / a.n * 1e6:.0f} us per transaction)")
    print(f"  all settled          {statistics.median(settled) * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
