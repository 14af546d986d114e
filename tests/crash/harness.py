"""The crash harness: the kiosk as a separate process (`kiosk run --headless`), its devices
and services outside it, where a power cut cannot reach them: an ID-003 acceptor, a ZVT
terminal and an ESC/POS printer on ptys, the HTTP aggregator and the wallet gateway on
127.0.0.1. A scripted customer drives the kiosk; this process plays the customer's hands
(notes into the acceptor, the phone paying the QR code). The kiosk is killed with SIGKILL
after its N-th journal write, restarted to recover, and the devices' own ledgers are
checked against the journal. (A killed kiosk cleans nothing up: a pty simulator it owned
would leave its temporary folder behind, once per kill; so it owns none.)

`Rig.kill_at` kills it instead when the external ID-003 device *enters* a state for a given
note (ESCROW, STACKING, VEND VALID, STACKED, IDLING after it): this process polls the
simulator (`Id003Simulator.status()`, about every millisecond, ~60 times per kiosk poll),
plays the customer's hands from the same loop, and sends SIGKILL the moment it sees the
state; the device keeps running and keeps its state, as a real acceptor does when only the
PC dies. `cash_violations` then checks every note the device holds against the journal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.bill.id003 import Status
from drivers.bill.simulator import Id003Simulator, default_codes
from drivers.card_terminal.simulator import ZvtSimulator
from drivers.printer.escpos_sim import EscposSimulator
from kiosk.backend.http_sim import ReloadlySimulator
from kiosk.payments.gateway_sim import WalletGatewaySimulator

ROOT = Path(__file__).resolve().parents[2]
KIOSK_ENV = {"KIOSK_LOG_LEVEL": "WARNING"}
NOTES = (2000, 5000, 10000, 20000, 50000, 100000)

# What the aggregator does with the top-up, per outcome of a path.
BACKEND_MODE = {"success": "succeed", "failure": "fail",
                "unknown_success": "timeout_after_commit", "unknown_failure": "lost"}


@dataclass
class Path_:
    method: str            # cash | qr | card
    outcome: str           # success | failure | unknown_success | unknown_failure
    amount: int = 5000
    notes: tuple[int, ...] = (2000, 2000, 2000)    # cash: 6000 for 5000, change 1000

    @property
    def name(self) -> str:
        return f"{self.method}-{self.outcome}"

    @property
    def customer(self) -> str:
        return f"{self.method}:globe-load:{self.amount}"


# Kill points in the device's escrow cycle of one note, as the device enters each state.
# "idle": IDLING (or DISABLED, once the kiosk closed the slot after the last note) right
# after STACKED was reported.
KILL_STATES = {"escrow": {Status.ESCROW}, "stacking": {Status.STACKING},
               "vend_valid": {Status.VEND_VALID}, "stacked": {Status.STACKED},
               "idle": {Status.IDLING, Status.DISABLED}}


@dataclass(frozen=True)
class KillPoint:
    state: str                  # a KILL_STATES key
    note: int                   # 1-based: the note of the customer's notes
    power_cycle: bool = False   # the acceptor loses power too, right after the kiosk dies

    @property
    def name(self) -> str:
        return f"note{self.note}-{self.state}" + ("-power-cycled" if self.power_cycle else "")


@dataclass
class Killed:
    """Where a kill landed: the device's status when it was seen entering (`at`), once the
    kiosk was dead (`dead`), and once the bytes the kiosk wrote just before dying had been
    taken by the device (`after`)."""
    at: Status
    dead: Status
    after: Status
    trace: list[str]            # the device's statuses as seen, "+" = a note inserted
    given: tuple[int, ...]      # the notes inserted before the kill

    @property
    def landed(self) -> bool:
        """The kiosk died in the state; at ESCROW and VEND VALID also before its answer
        (STACK, ACK) went out: the device is still waiting for it."""
        if self.dead is not self.at:
            return False
        return self.after is self.at or self.at not in (Status.ESCROW, Status.VEND_VALID)


@dataclass
class Result:
    returncode: int
    summary: dict[str, Any] = field(default_factory=dict)
    output: str = ""


class Rig:
    """The world outside the kiosk, and the kiosk's configuration pointing at it."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.acceptor = Id003Simulator(default_codes(NOTES)).start()
        self.terminal = ZvtSimulator().start()
        self.terminal.step_s = 0.02
        self.terminal.t3_s = 1.0
        self.printer = EscposSimulator().start()
        self.aggregator = ReloadlySimulator().start()
        self.gateway = WalletGatewaySimulator().start()
        self._hands_stop = threading.Event()
        self._hands: threading.Thread | None = None
        self.notes_to_give: list[int] = []
        self.config = self._write_config()

    def close(self) -> None:
        self.stop_hands()
        for sim in (self.acceptor, self.terminal, self.printer, self.aggregator, self.gateway):
            sim.stop()

    def _write_config(self) -> Path:
        for name in ("kiosk.toml", "catalog.toml"):
            shutil.copy(ROOT / "config" / name, self.dir / name)
        ids = "\n".join(f"{op} = {json.dumps(v)}"
                        for op, v in self.aggregator.operator_ids.items())
        text = f'''base = "kiosk.toml"
[kiosk]
demo = false
data_dir = "var"
[backend]
driver = "reloadly"
simulator = false
base_url = "{self.aggregator.url}"
auth_url = "{self.aggregator.url}/oauth/token"
client_id = "kiosk"
client_secret = "secret"
verify = false
timeout_s = 3
query_interval_s = 0.1
max_unknown_queries = 3
not_found_window_s = 1        # the provider's window, short: a lost request settles fast
[backend.operator_ids]
{ids}
[wallet]
driver = "http"
simulator = false
base_url = "{self.gateway.url}"
api_key = "kiosk-demo-key"
verify = false
timeout_s = 2.0
[cash]
driver = "id003"
port = "{self.acceptor.link}"
poll_ms = 60
[card]
driver = "zvt"
port = "{self.terminal.link}"
t1_s = 0.3
t3_s = 1.0
t4_s = 6.0
[printer]
driver = "escpos"
port = "{self.printer.link}"
'''
        path = self.dir / "crash.toml"
        path.write_text(text, encoding="utf-8")
        return path

    @property
    def journal_path(self) -> Path:
        return self.dir / "var" / "journal.sqlite3"

    # ---- the customer's hands
    def start_hands(self, p: Path_) -> None:
        self.notes_to_give = list(p.notes) if p.method == "cash" else []
        self._hands_stop.clear()
        self._hands = threading.Thread(target=self._hands_loop, args=(p.method,), daemon=True)
        self._hands.start()

    def stop_hands(self) -> None:
        self._hands_stop.set()
        if self._hands is not None:
            self._hands.join(5)
            self._hands = None

    def _hands_loop(self, method: str) -> None:
        while not self._hands_stop.wait(0.03):
            if method == "cash" and self.notes_to_give:
                if self.acceptor.status() is Status.IDLING:
                    if self.acceptor.insert(self.notes_to_give[0]):
                        self.notes_to_give.pop(0)
                        self._hands_stop.wait(0.15)
            elif method == "qr":
                for ref in self.gateway.pending_refs():
                    self.gateway.pay(ref)

    # ---- the kiosk process
    def _command(self, customer: str | None, crash_after: int = 0) -> list[str]:
        cmd = [sys.executable, "-m", "kiosk.cli", "--config", str(self.config), "run",
               "--headless", "--exit-when-settled"]
        if customer:
            cmd += ["--customer", customer]
        if crash_after:
            cmd += ["--crash-after-writes", str(crash_after)]
        return cmd

    def run(self, customer: str | None = None, crash_after: int = 0,
            timeout: float = 60.0) -> Result:
        proc = subprocess.Popen(self._command(customer, crash_after), cwd=ROOT,
                                env={**os.environ, **KIOSK_ENV, "PYTHONFAULTHANDLER": "1"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # A failure that shows where the kiosk was: SIGABRT makes faulthandler print
            # every thread's stack before it dies.
            proc.send_signal(signal.SIGABRT)
            try:
                stdout, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            Path(f"/tmp/crash-timeout-{os.getpid()}.log").write_text(stdout + stderr)
            return Result(-1, {}, f"timed out after {timeout:.0f} s\n" + stdout[-3000:]
                          + stderr[-6000:])
        p = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        summary: dict[str, Any] = {}
        for line in reversed(p.stdout.splitlines()):
            if line.startswith("{"):
                summary = json.loads(line)
                break
        return Result(p.returncode, summary, p.stdout[-3000:] + p.stderr[-3000:])

    def kill_at(self, point: KillPoint, customer: str, notes: tuple[int, ...],
                timeout: float = 30.0) -> Killed:
        """Run the kiosk with `customer`, feed it `notes` (each once the device is IDLING),
        and SIGKILL it as the device enters `point.state` for note `point.note`.

        STACKED can last less than a millisecond (after the last note the kiosk closes the
        slot and polls at once): for that point the device answers 0.1 s late
        (`slow`) from the moment VEND VALID shows, so the kill lands while it is STACKED."""
        out = open(self.dir / "killed.log", "ab")
        proc = subprocess.Popen(self._command(customer), cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **KIOSK_ENV})
        out.close()
        sim, targets = self.acceptor, KILL_STATES[point.state]
        to_give, note, acked_before = list(notes), 0, 0
        last: Status | None = None
        trace: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"{point.name}: the kiosk exited "
                                         f"({proc.returncode}) first; device: {trace}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"{point.name}: never reached; device: {trace}")
                st = sim.status()
                entered, last = st is not last, st
                if entered:
                    trace.append(st.name)
                acked = sim.record.vend_valid_acked > acked_before    # STACKED entered
                if note == point.note:
                    if (point.state == "stacked" and st is Status.VEND_VALID
                            and not sim.reply_delay):
                        sim.slow(0.1)
                    if st in targets and (entered if point.state != "idle" else acked):
                        proc.send_signal(signal.SIGKILL)
                        proc.wait(10)
                        dead = sim.status()
                        break
                if st is Status.IDLING and to_give and sim.insert(to_give[0]):
                    to_give.pop(0)
                    note, acked_before = note + 1, sim.record.vend_valid_acked
                    trace.append("+")
                time.sleep(0.001)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        # What the kiosk wrote just before it died is still on the line: let the device
        # take it (late, if it was slowed), then see where the kill landed.
        slowed = sim.reply_delay
        sim.slow(0)
        time.sleep(0.03 + slowed)
        return Killed(st, dead, sim.status(), trace, notes[:note])

    def power_cycle_acceptor(self) -> None:
        """The acceptor loses power and comes back (POWER_UP, or a power-up with the bill
        inside if one was mid-cycle). Only while no kiosk runs: nothing else touches the
        device then (the simulator's thread only answers host frames)."""
        self.acceptor.device.power_cycle()

    def unresolved(self) -> list[dict[str, Any]]:
        """`kiosk journal list --unresolved --json`: what the technician would read."""
        p = subprocess.run([sys.executable, "-m", "kiosk.cli", "--config", str(self.config),
                            "journal", "list", "--unresolved", "--json"], cwd=ROOT,
                           env={**os.environ, **KIOSK_ENV}, capture_output=True, text=True,
                           timeout=30, check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        return list(json.loads(p.stdout))

    def cash_violations(self, notes: tuple[int, ...]) -> list[str]:
        """Every note the customer gave, against the device's truth and the journal: each
        note in the cash box booked exactly once to its transaction (NoteCredited, or
        NoteInDoubt counted as paid), nothing given back booked, nothing credited to nobody,
        nothing left inside the device, and each cash transaction paid what was booked.
        (Notes are told apart by value: give notes of different values.)"""
        j = self.journal()
        rec = self.acceptor.record
        out: list[str] = []
        txns = {t["ref"]: t for t in j["transactions"] if t["method"] == "cash"}
        booked = [(ref, d) for ref, kind, d in j["events"]
                  if kind in ("NoteCredited", "NoteInDoubt")]
        for ref, d in booked:
            if ref not in txns:
                out.append(f"note {d['value']} ({d['key']}) booked to no cash transaction "
                           f"({ref})")
        in_box, counted = Counter(rec.stacked), Counter(d["value"] for r, d in booked
                                                        if r in txns)
        for value in sorted(set(in_box) | set(counted)):
            if in_box[value] != counted[value]:
                back = " (given back to the customer)" if value in rec.returned else ""
                out.append(f"note {value}: {in_box[value]} in the cash box, booked "
                           f"{counted[value]} times{back}")
        if Counter(rec.stacked) + Counter(rec.returned) != Counter(notes):
            out.append(f"notes given {list(notes)}, the device stacked {rec.stacked} and "
                       f"returned {rec.returned} (device now "
                       f"{self.acceptor.status().name}): not every note is accounted for")
        for ref, t in txns.items():
            paid = sum(d["value"] for r, d in booked if r == ref)
            if t["paid"] != paid:
                out.append(f"{ref}: paid {t['paid']}, notes booked to it {paid}")
        return out

    # ---- the books
    def journal(self) -> dict[str, Any]:
        db = sqlite3.connect(self.journal_path)
        db.row_factory = sqlite3.Row
        try:
            txns = [dict(r) for r in db.execute("SELECT * FROM transactions")]
            events = [(r["ref"], r["kind"], json.loads(r["data"]))
                      for r in db.execute("SELECT ref, kind, data FROM events ORDER BY seq")]
            vouchers = [dict(r) for r in db.execute("SELECT * FROM vouchers")]
        finally:
            db.close()
        return {"transactions": txns, "events": events, "vouchers": vouchers}

    def violations(self) -> list[str]:
        """Every way the journal and the world disagree (empty: nothing lost or doubled)."""
        j = self.journal()
        out: list[str] = []
        open_ = [t["ref"] for t in j["transactions"] if t["status"] != "closed"]
        if open_:
            out.append(f"still open after recovery: {open_}")
        for t in j["transactions"]:
            if t["status"] == "closed" and t["paid"] != t["credited"] + t["voucher"] + t["refunded"]:
                out.append(f"{t['ref']}: paid {t['paid']} != credited {t['credited']} + "
                           f"voucher {t['voucher']} + refunded {t['refunded']}")
        # Cash: every note in the cash box is journaled as money (credited to a
        # transaction, in doubt and counted as paid, or kept as an orphan / power-up note
        # for reconciliation). As the ledger's cash box counts them: a note found at
        # power-up counts only in the stacker (one in escrow is given back).
        stacked = sum(self.acceptor.record.stacked)
        credited = sum(d["value"] for _r, k, d in j["events"] if k == "NoteCredited")
        in_doubt = (sum(d.get("in_doubt", 0) for _r, k, d in j["events"] if k == "CashFault")
                    + sum(d["value"] for _r, k, d in j["events"] if k == "NoteInDoubt"))
        power_up = sum(d.get("value", 0) for _r, k, d in j["events"]
                       if k == "NoteAtPowerUp" and d.get("where") == "stacker")
        if stacked != credited + in_doubt + power_up:
            out.append(f"cash box holds {stacked}, journal counts {credited} credited + "
                       f"{in_doubt} in doubt + {power_up} at power-up")
        closed = {t["ref"]: t for t in j["transactions"]}
        out += books_violations(self.aggregator, self.terminal.ledger, self.gateway.ledger,
                                closed, j["events"])
        return out


def books_violations(aggregator: Any, card_ledger: Any, wallet_ledger: dict[str, int],
                     txns: dict[str, dict[str, Any]],
                     events: list[tuple[Any, str, dict[str, Any]]]) -> list[str]:
    """The services' own books against the journal's transactions (by reference): the
    aggregator credited each reference at most once and as much as the journal says, the
    card terminal keeps charged what the journal kept, and the wallet's customers paid what
    the journal took or kept as a late-payment voucher."""
    out: list[str] = []
    for ref, n in aggregator.credit_count.items():
        if n > 1:
            out.append(f"{ref}: the aggregator credited it {n} times")
    for ref, amount in aggregator.credits.items():
        t = txns.get(ref)
        if t is None or t["credited"] != amount:
            out.append(f"{ref}: the aggregator credited {amount}, the journal "
                       f"{t and t['credited']}")
    for ref, t in txns.items():
        if t["credited"] and aggregator.credits.get(ref) != t["credited"]:
            out.append(f"{ref}: the journal says credited {t['credited']}, the aggregator "
                       f"{aggregator.credits.get(ref)}")
    charged = sum(card_ledger.authorised.values()) - sum(card_ledger.reversed.values())
    kept = sum(t["paid"] - t["refunded"] for t in txns.values() if t["method"] == "card")
    if charged != kept:
        out.append(f"card: the terminal keeps {charged} charged (authorised "
                   f"{dict(card_ledger.authorised)}, reversed {dict(card_ledger.reversed)}),"
                   f" the journal {kept}")
    paid = sum(wallet_ledger.values())
    taken = sum(t["paid"] for t in txns.values() if t["method"] == "qr")
    late = sum(d["amount"] for _r, k, d in events if k == "LatePayment")
    if paid != taken + late:
        out.append(f"wallet: customers paid {paid}, the journal {taken} + {late} late")
    return out
