"""Soak: many headless transactions through the real runtime, engine and journal, with
random payment paths and faults; conservation checked at the end.

    .venv/bin/python benchmarks/soak.py [-n 10000] [--seed 7] [--data-dir DIR] [--smoke]

Devices and services are the in-process simulated ones (drivers/simulated.py,
kiosk/backend/simulated.py, kiosk/payments/simulated.py) with no delays, so the figure is
the kiosk's own throughput (engine, journal with fsync, runtime), not the devices'. The
crash harness (tests/crash, `KIOSK_CRASH_ROUNDS=n` for a longer run) covers power cuts with
the byte-exact device simulators and the HTTP services.

Each transaction: a random payment method (cash with 1-3 notes, QR, card, or a voucher
from an earlier one, with the rest in cash), a random outcome at the provider (success,
failure, reply lost after the credit), and now and then a fault: the customer cancels, a
card is declined, the card reversal is refused, the QR code expires, the acceptor jams.

Printed: transactions per second, the conservation check (every transaction closed with
paid = credited + voucher + refunded; no reference credited twice; notes stacked = notes
journaled; card charged - reversed = what the journal kept; vouchers redeemed at most once
and only active ones), and RSS at start and end. Goal: zero violations, RSS growth < 5 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.simulated import (SimulatedBillAcceptor, SimulatedCardTerminal,  # noqa: E402
                               SimulatedPrinter, SimulatedSimReader)
from kiosk import config, events as ev  # noqa: E402
from kiosk.backend.simulated import SimulatedBackend  # noqa: E402
from kiosk.engine import Phase  # noqa: E402
from kiosk.payments.simulated import SimulatedWallet  # noqa: E402
from kiosk.runtime import Runtime  # noqa: E402

NUMBER = "09171234567"


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def wait(cond, limit: float = 10.0) -> bool:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0)
    return True


async def one(rt: Runtime, rng: random.Random, vouchers: list[str]) -> None:
    d = rt.devices
    backend: SimulatedBackend = d["backend"]
    backend.mode = rng.choices(("succeed", "fail", "timeout"), (8, 1, 1))[0]
    card: SimulatedCardTerminal = d["card"]
    card.next_outcome = "decline" if rng.random() < 0.05 else "approve"
    card.reversal_works = rng.random() > 0.1
    for e in (ev.Start(), ev.NumberEntered(NUMBER), ev.ConfirmNumber(True)):
        rt.post(e)
    await wait(lambda: rt.state.offered is not None)
    amount = rng.choice((2000, 5000, 10000))
    rt.post(ev.ChooseProduct("globe-load", amount))
    method = rng.choices(("cash", "qr", "card", "voucher"), (5, 2, 2, 1 if vouchers else 0))[0]
    rt.post(ev.ChoosePayment(method))
    await wait(lambda: rt.state.txn.ref is not None or rt.state.phase is not Phase.CHOOSE_PAYMENT)
    fault = rng.random()
    if method == "voucher":
        rt.post(ev.VoucherEntered(vouchers.pop(rng.randrange(len(vouchers)))))
        await wait(lambda: rt.state.notice != "voucher.checking")
        if rt.state.phase is Phase.PAY_VOUCHER and rt.state.txn.remaining:
            rt.post(ev.ChoosePayment("cash"))
            method = "cash"
    if method == "cash" and rt.state.phase is Phase.PAY_CASH:
        cash: SimulatedBillAcceptor = d["cash"]
        for _ in range(12):
            if rt.state.phase is not Phase.PAY_CASH:
                break
            await wait(lambda: cash.enabled and cash.escrow is None, 2)
            if fault < 0.03:
                rt.post(ev.Cancel())
                break
            if fault < 0.04:
                cash.jam()
                cash.clear_fault()
                break
            # Mostly a note that fits (a larger one is given back at escrow), now and then not.
            fits = [v for v in (2000, 5000, 10000) if v - rt.state.txn.remaining < 2000]
            note = rng.choice(fits if fits and rng.random() > 0.05 else [10000])
            if cash.insert(note):
                await wait(lambda: cash.escrow is None)
    elif method == "qr" and rt.state.phase is Phase.PAY_QR:
        await wait(lambda: rt.state.qr_payload)
        if fault < 0.05:
            rt.post(ev.QrExpired(rt.state.txn.ref or ""))
        else:
            d["wallet"].pay(rt.state.txn.ref or "")
    elif method == "card" and fault < 0.03:
        rt.post(ev.Cancel())
    await wait(lambda: rt.state.phase in (Phase.RESULT, Phase.RECEIPT, Phase.IDLE,
                                          Phase.CHOOSE_PAYMENT)   # declined, expired
               or rt.state.txn.closed, 10)
    if rt.state.txn.voucher_code and not rt.state.txn.voucher_held:
        vouchers.append(rt.state.txn.voucher_code)
    for _ in range(5):                               # the customer leaves
        phase = rt.state.phase
        if phase is Phase.IDLE:
            break
        if phase in (Phase.RESULT, Phase.RECEIPT):
            rt.post(ev.Done())
        elif phase is not Phase.FULFILLING:
            rt.post(ev.Cancel())
        await wait(lambda: rt.state.phase is not phase, 5)


def violations(rt: Runtime) -> list[str]:
    j, d = rt.journal, rt.devices
    out = []
    rows = j.transactions(limit=10**9)
    for r in rows:
        if r.status != "closed":
            out.append(f"{r.ref} still open")
        elif r.paid != r.credited + r.voucher + r.refunded:
            out.append(f"{r.ref}: paid {r.paid} != {r.credited}+{r.voucher}+{r.refunded}")
    credited = {r.ref: r.credited for r in rows if r.credited}
    if credited != {k: v for k, v in d["backend"].ledger.items()}:
        out.append("provider ledger != journal credits")
    notes = sum(e.data["value"] for e in j.events() if e.kind == "NoteCredited")
    orphans = 0  # a note credited with no open transaction is journaled as NoteCredited too
    if sum(d["cash"].record.stacked) != notes + orphans:
        out.append(f"cash box {sum(d['cash'].record.stacked)} != journal {notes}")
    led = d["card"].ledger
    kept = sum(r.paid - r.refunded for r in rows if r.method == "card")
    if sum(led.authorised.values()) - sum(led.reversed.values()) != kept:
        out.append("card terminal != journal")
    redeemed = [e.data["code"] for e in j.events() if e.kind == "VoucherRedeemed"]
    if len(redeemed) != len(set(redeemed)):
        out.append("a voucher redeemed twice")
    return out


async def main(n: int, seed: int, data_dir: Path) -> int:
    import logging
    logging.disable(logging.ERROR)              # ALERTs are expected: faults are injected
    s = replace(config.load(data_dir=data_dir), query_interval_s=0.0, backend_timeout_s=2)
    devices = {"sim_reader": SimulatedSimReader(delay_s=0),
               "cash": SimulatedBillAcceptor(s.cash_denominations, delay_s=0),
               "card": SimulatedCardTerminal(delay_s=0), "printer": SimulatedPrinter(delay_s=0),
               "backend": SimulatedBackend(delay_s=0, timeout_s=0),
               "wallet": SimulatedWallet(s.currency, delay_s=0)}
    rt = Runtime(s, devices=devices)
    rt.LATE_POLL_S = rt.QR_POLL_S = 0.01
    await rt.start()
    rng = random.Random(seed)
    vouchers: list[str] = []
    for _ in range(20):                              # warm up before the first RSS figure
        await one(rt, rng, vouchers)
    gc.collect()
    rss0, t0 = rss_kb(), time.perf_counter()
    for i in range(n):
        await one(rt, rng, vouchers)
        devices["printer"].printed.clear()           # the paper leaves the machine
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} transactions, RSS {rss_kb() / 1024:.1f} MB", flush=True)
    elapsed = time.perf_counter() - t0
    await wait(lambda: not rt.background, 30)
    gc.collect()
    rss1 = rss_kb()
    found = violations(rt)
    await rt.stop()
    print(f"soak: {n} transactions in {elapsed:.1f} s = {n / elapsed:.1f} per second")
    print(f"conservation: {len(found)} violations" + "".join(f"\n  {v}" for v in found[:20]))
    print(f"RSS: {rss0 / 1024:.1f} MB at start, {rss1 / 1024:.1f} MB at end, growth "
          f"{(rss1 - rss0) / 1024:+.1f} MB (goal < 5 MB)")
    return 1 if found else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--smoke", action="store_true",
                    help="20 transactions (a test that it runs, no figure to keep)")
    a = ap.parse_args()
    if a.smoke:
        a.n = 20
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(main(a.n, a.seed, a.data_dir or Path(tmp))))
