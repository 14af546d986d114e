"""The chaos rig: tests/crash's world (the kiosk as its own process against an ID-003
acceptor and a ZVT terminal on ptys, the HTTP aggregator and wallet gateway), plus what the
chaos tests need on top of it:

- a configuration written from config/kiosk.toml with only the options each configured
  driver takes (drivers are being reshaped: an option a driver no longer takes is left out
  instead of failing the start), every device the real driver on a pty simulator of this
  process; the ZVT terminal observed (`ObservedZvt`);
- the kiosk started with Popen (so it can be stopped with SIGSTOP, or run through
  tests/chaos/stalled_kiosk.py), its output kept in files of the work folder;
- a customer's hands that put a returned note back in (a customer tries again);
- the full money check of a settled kiosk (`violations`): the simulators' own ledgers
  against the journal, note by note, and conservation per transaction.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from drivers.bill.id003 import Status
from drivers.card_terminal.simulator import ZvtSimulator
from drivers.printer.escpos_sim import EscposSimulator
from tests.crash.harness import ROOT, Rig, books_violations

FULL = os.environ.get("KIOSK_CHAOS_FULL", "") not in ("", "0")

# What the aggregator does with the top-up, per outcome. "unknown": the reply is lost after
# the operator credited it (the kiosk must look the same reference up, never send it again).
BACKEND_MODE = {"success": "succeed", "failure": "fail", "unknown": "timeout_after_commit",
                "unknown_failure": "lost"}
OUTCOMES = ("success", "failure", "unknown") + (("unknown_failure",) if FULL else ())
METHODS = ("cash", "card", "qr")

AMOUNT = 5000                              # globe-load 50.00
NOTES = (2000, 2000, 2000)                 # 60.00 for 50.00: 10.00 change as a voucher


def sample(items: list[Any], i: int) -> list[Any]:
    """All of `items` with KIOSK_CHAOS_FULL=1, else the one at position `i` (mod len): the
    i-th parametrisation takes the i-th item, so a handful of tests covers every item and
    the choice is the same on every run (a failure is reproducible)."""
    if FULL or len(items) <= 1:
        return list(items)
    return [items[i % len(items)]]


# ---------------------------------------------------------------------- the card terminal
class ObservedZvt(ZvtSimulator):
    """The ZVT simulator, unchanged, with a record of what it tells the ECR: the public
    state (`commands`, `ledger`) shows a payment started and an approval sent, but not that
    the terminal went on to the completion (06 0F); `told` does: (time, "04 0F", confirmed).
    The public state is also too late to act on: the ECR confirms a 04 0F within ~3 ms of
    `ledger.authorised` being set, so `before_tell` lets a test act when the frame is sent.
    """

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.told: list[tuple[float, str, bool | None]] = []
        # Called on the terminal's thread just before it tells the ECR `apdu`: a test can
        # act at the exact moment the terminal enters a state (the terminal goes on).
        self.before_tell: Callable[[bytes], None] | None = None

    def _tell(self, apdu: bytes) -> bool:
        code = apdu[:2].hex(" ").upper()
        if self.before_tell is not None:
            self.before_tell(apdu)
        with self._lock:
            self.told.append((time.monotonic(), code, None))
            i = len(self.told) - 1
        ok = super()._tell(apdu)
        with self._lock:
            t, c, _ = self.told[i]
            self.told[i] = (t, c, ok)
        return ok


# ---------------------------------------------------------------------- a kiosk process
@dataclass
class Run:
    """One kiosk process."""
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float
    returncode: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float) -> int | None:
        """The exit code; None when it had to be killed after `timeout` s."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)     # in case it was left stopped
            except ProcessLookupError:
                pass
            self.proc.kill()
            self.proc.wait(10)
            self.returncode = None
        for line in reversed(self.out.read_text(errors="replace").splitlines()):
            if line.startswith("{"):
                try:
                    self.summary = json.loads(line)
                except ValueError:
                    pass
                break
        return self.returncode

    def output(self, tail: int = 4000) -> str:
        out = self.out.read_text(errors="replace")
        err = self.err.read_text(errors="replace")
        return f"--- stdout\n{out[-tail:]}\n--- stderr (last {tail} chars)\n{err[-tail:]}"


class Hands(threading.Thread):
    """The customer: notes into the acceptor whenever it is idle (a note given back is put
    in again, at most `retries` times), the phone pays a QR order when one is open."""

    def __init__(self, rig: ChaosRig, method: str, notes: tuple[int, ...] = NOTES,
                 retries: int = 3) -> None:
        super().__init__(daemon=True, name="hands")
        self.rig, self.method = rig, method
        self.to_give = list(notes) if method == "cash" else []
        self.given: list[int] = []
        self.retries = retries
        self.halt = threading.Event()

    def run(self) -> None:
        acc = self.rig.acceptor
        seen_returned = len(acc.record.returned)
        while not self.halt.wait(0.03):
            if self.method == "cash":
                returned = acc.record.returned
                while len(returned) > seen_returned:
                    if self.retries > 0:
                        self.retries -= 1
                        self.to_give.insert(0, returned[seen_returned])
                    seen_returned += 1
                if self.to_give and acc.status() is Status.IDLING:
                    if acc.insert(self.to_give[0]):
                        self.given.append(self.to_give.pop(0))
                        self.halt.wait(0.15)
            elif self.method == "qr":
                for ref in self.rig.gateway.pending_refs():
                    self.rig.gateway.pay(ref)

    def stop(self) -> None:
        self.halt.set()
        self.join(5)


class ChaosRig(Rig):
    """tests/crash's Rig with an observed ZVT terminal and a configuration that fits the
    drivers as they are now."""

    def __init__(self, workdir: Path, terminal_step_s: float = 0.02) -> None:
        super().__init__(workdir)
        self.terminal.stop()
        self.terminal: ObservedZvt = ObservedZvt().start()
        self.terminal.step_s = terminal_step_s
        self.terminal.t3_s = 1.0
        if getattr(self, "printer", None) is None:     # older harness: no printer on a pty
            self.printer = EscposSimulator().start()
        self.dropped_options: list[str] = []
        self._configured = True
        self.config = self._write_config()
        self.hands: Hands | None = None
        self.runs: list[Run] = []

    def close(self) -> None:
        self.stop_hands()
        super().close()
        self.printer.stop()                               # stop() may be called again

    # ---- configuration
    def _write_config(self) -> Path:
        if not getattr(self, "_configured", False):
            return self.dir / "placeholder.toml"   # Rig.__init__: written once all is up
        base = tomllib.loads((ROOT / "config" / "kiosk.toml").read_text(encoding="utf-8"))
        (self.dir / "catalog.toml").write_bytes((ROOT / "config" / "catalog.toml").read_bytes())
        over: dict[str, dict[str, Any]] = {
            "kiosk": {"demo": False, "data_dir": "var", "catalog": "catalog.toml"},
            "backend": {"driver": "reloadly", "simulator": False,
                        "base_url": self.aggregator.url,
                        "auth_url": f"{self.aggregator.url}/oauth/token",
                        "client_id": "kiosk", "client_secret": "secret", "verify": False,
                        "timeout_s": 3, "query_interval_s": 0.1, "max_unknown_queries": 3,
                        "not_found_window_s": 1.0,
                        "operator_ids": dict(self.aggregator.operator_ids)},
            "wallet": {"driver": "http", "simulator": False, "base_url": self.gateway.url,
                       "api_key": "kiosk-demo-key", "verify": False, "timeout_s": 2.0},
            "cash": {"driver": "id003", "simulator": False, "port": self.acceptor.link,
                     "poll_ms": 60},
            "card": {"driver": "zvt", "simulator": False, "port": self.terminal.link,
                     "t1_s": 0.3, "t3_s": 1.0, "t4_s": 6.0},
            "printer": {"driver": "escpos", "simulator": False, "port": self.printer.link},
        }
        for name, values in over.items():
            base.setdefault(name, {}).update(values)
        # Options the configuration reads itself; the rest must be the driver's.
        own = {"backend": {"driver", "timeout_s", "max_unknown_queries", "query_interval_s",
                           "not_found_window_s", "late_check_hours", "late_check_interval_s",
                           "late_check_max_interval_s"},
               "wallet": {"driver", "merchant_name", "merchant_city"}}
        from drivers.registry import options_of
        for name in ("backend", "wallet", "cash", "card", "printer"):
            sec = base[name]
            takes = options_of(name, sec["driver"])
            for key in list(sec):
                if key not in takes and key not in own.get(name, {"driver"}):
                    self.dropped_options.append(f"{name}.{key}")
                    del sec[key]
        path = self.dir / "chaos.toml"
        path.write_text(_toml(base), encoding="utf-8")
        return path

    # ---- the customer's hands
    def start_hands(self, p: Any) -> None:       # noqa: D102 - Rig's signature
        self.give(p.method)

    def give(self, method: str, notes: tuple[int, ...] = NOTES) -> Hands:
        self.stop_hands()
        self.hands = Hands(self, method, notes)
        self.hands.start()
        return self.hands

    def stop_hands(self) -> None:
        hands = getattr(self, "hands", None)
        if hands is not None:
            hands.stop()
            self.hands = None

    # ---- the kiosk
    def kiosk_cmd(self, customer: str | None, settle: bool = True) -> list[str]:
        args = ["--config", str(self.config), "run", "--headless"]
        if settle:
            args.append("--exit-when-settled")
        if customer:
            args += ["--customer", customer]
        return args

    def start(self, args: list[str], wrapper: list[str] | None = None,
              log_level: str = "INFO") -> Run:
        n = len(self.runs) + 1
        if wrapper is None:
            cmd = [sys.executable, "-m", "kiosk.cli", *args]
        else:
            cmd = [sys.executable, "-m", "tests.chaos.stalled_kiosk", *wrapper, "--", *args]
        out, err = self.dir / f"run{n}.out", self.dir / f"run{n}.err"
        env = {**os.environ, "KIOSK_LOG_LEVEL": log_level, "PYTHONUNBUFFERED": "1"}
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=o, stderr=e)
        run = Run(proc, out, err, time.monotonic())
        self.runs.append(run)
        return run

    def serve(self, method: str, outcome: str, wrapper: list[str] | None = None,
              timeout: float = 60.0, during: Callable[[Run], None] | None = None,
              notes: tuple[int, ...] = NOTES) -> Run:
        """One customer paying `method`, the aggregator answering per `outcome`; `during`
        runs on this thread while the kiosk works (it may stop it, fault the line...)."""
        self.aggregator.set_mode(BACKEND_MODE[outcome])
        self.give(method, notes)
        run = self.start(self.kiosk_cmd(f"{method}:globe-load:{AMOUNT}"), wrapper)
        try:
            if during is not None:
                during(run)
            run.wait(timeout - (time.monotonic() - run.started))
        finally:
            if run.returncode is None and run.proc.poll() is None:
                run.wait(0)
            self.stop_hands()
            self.aggregator.set_mode("succeed")
        return run

    # ---- the books
    def violations(self, cash_box: bool = True) -> list[str]:   # Rig's signature
        """The chaos suite's full check (stricter than Rig's: note by note, every book)."""
        return money_violations(self)


# ---------------------------------------------------------------------- the money check
MONEY_IN = ("NoteCredited", "NoteInDoubt", "QrPaid", "CardApproved", "VoucherRedeemed")


def _books(rig: Rig, since_seq: int, since_number: int) -> dict[str, Any]:
    """The journal's transactions numbered above `since_number`, its events after
    `since_seq` and the vouchers of those transactions."""
    db = journal_db(rig.journal_path)
    try:
        txns = [dict(r) for r in db.execute("SELECT * FROM transactions WHERE number > ?",
                                            (since_number,))]
        events = [(r["ref"], r["kind"], json.loads(r["data"])) for r in db.execute(
            "SELECT ref, kind, data FROM events WHERE seq > ? ORDER BY seq", (since_seq,))]
        refs = {t["ref"] for t in txns}
        vouchers = [dict(r) for r in db.execute("SELECT * FROM vouchers") if r["ref"] in refs]
    finally:
        db.close()
    return {"transactions": txns, "events": events, "vouchers": vouchers}


def money_violations(rig: Rig, since_seq: int = 0, since_number: int = 0) -> list[str]:
    """Every way the journal and the world disagree; empty when nothing was lost, doubled
    or left open. Notes are matched as multisets of values (the device records values).
    `since_seq` / `since_number`: only what came after a journal built beforehand."""
    j = _books(rig, since_seq, since_number)
    out: list[str] = []
    txns = {t["ref"]: t for t in j["transactions"]}
    events = j["events"]
    open_ = sorted(r for r, t in txns.items() if t["status"] != "closed")
    if open_:
        out.append(f"transactions left open: {open_}")
    # Conservation per transaction, and its `paid` equal to the money journaled for it.
    # Money that came in while the transaction was open is its `paid`; money arriving after
    # its close is late (a LatePayment voucher, a ReverseCard), judged by the device checks.
    booked: Counter[str] = Counter()
    late: Counter[str] = Counter()
    closed: set[str] = set()
    for ref, kind, d in events:
        if ref and kind in MONEY_IN and ref not in closed:
            booked[ref] += int(d.get("amount", d.get("value", 0)))
        elif kind == "CloseTransaction":
            closed.add(d["ref"])
        elif kind == "LatePayment":
            late[d["ref"]] += int(d["amount"])
    vouchers: Counter[str] = Counter()
    for v in j["vouchers"]:
        if v["status"] != "void":
            vouchers[v["ref"]] += int(v["amount"])
    for ref, amount in late.items():
        vouchers[ref] -= amount                     # the late payment's own voucher
    for ref, t in sorted(txns.items()):
        if t["status"] != "closed":
            continue
        if t["paid"] != t["credited"] + t["voucher"] + t["refunded"]:
            out.append(f"{ref}: paid {t['paid']} != credited {t['credited']} + voucher "
                       f"{t['voucher']} + refunded {t['refunded']}")
        if t["paid"] != booked[ref]:
            out.append(f"{ref}: closed as paid {t['paid']}, but the journal has "
                       f"{booked[ref]} of money in booked to it ({t['method']})")
        if t["voucher"] != vouchers[ref]:
            out.append(f"{ref}: closed with voucher {t['voucher']}, vouchers issued on it "
                       f"{vouchers[ref]}")
    out += _cash_violations(rig, events, txns)
    out += books_violations(rig.aggregator, rig.terminal.ledger, rig.gateway.ledger, txns,
                            events)
    return out


def _cash_violations(rig: Rig, events: list[tuple[Any, str, dict[str, Any]]],
                     txns: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    rec = rig.acceptor.record
    stacked, returned = Counter(rec.stacked), Counter(rec.returned)
    credited: Counter[int] = Counter()
    in_doubt: Counter[int] = Counter()
    outcomes: dict[str, list[str]] = {}
    stack_keys: dict[str, str | None] = {}
    for ref, kind, d in events:
        if kind == "NoteCredited":
            credited[d["value"]] += 1
            if not ref:
                out.append(f"a note of {d['value']} (key {d.get('key')!r}) credited to no "
                           "transaction, while the customer was paying")
        elif kind == "NoteInDoubt":
            in_doubt[d["value"]] += 1
        elif kind == "CashFault" and d.get("in_doubt"):
            in_doubt[d["in_doubt"]] += 1                 # a journal from before keys
        elif kind == "NoteAtPowerUp" and d.get("value"):
            in_doubt[d["value"]] += 1
        elif kind == "StackNote" and d.get("key"):
            stack_keys[d["key"]] = ref
        if kind in ("NoteCredited", "NoteReturned", "NoteInDoubt") and d.get("key"):
            outcomes.setdefault(d["key"], []).append(kind)
    lost = stacked - (credited + in_doubt)
    if lost:
        out.append(f"notes in the cash box never credited nor booked in doubt: "
                   f"{sorted(lost.elements())} (box {sorted(rec.stacked)}, credited "
                   f"{sorted(credited.elements())}, in doubt {sorted(in_doubt.elements())})")
    phantom = credited - stacked
    if phantom:
        out.append(f"notes credited that are not in the cash box (returned: "
                   f"{sorted(rec.returned)}): {sorted(phantom.elements())}")
    if sum((credited + in_doubt).values()) > sum((stacked + returned).values()) + len(rec.jammed):
        out.append(f"more notes journaled ({sorted((credited + in_doubt).elements())}) than "
                   f"the customer gave (stacked {sorted(rec.stacked)}, returned "
                   f"{sorted(rec.returned)})")
    for key, kinds in outcomes.items():
        if len(kinds) > 1:
            out.append(f"note {key}: {len(kinds)} outcomes journaled {kinds}")
    for key, ref in stack_keys.items():
        if key not in outcomes:
            out.append(f"note {key} (told to stack for {ref}) has no outcome: neither "
                       "credited, returned nor booked in doubt")
    return out


def journal_events(rig: Rig) -> list[tuple[Any, str, dict[str, Any]]]:
    return rig.journal()["events"]


# ---------------------------------------------------------------------- small helpers
def wait_for(cond: Callable[[], Any], timeout: float, step: float = 0.002) -> Any:
    """Poll `cond` (tightly: device states last tens of ms) until true or `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def stop_for(run: Run, seconds: float) -> None:
    """SIGSTOP the kiosk process, SIGCONT it `seconds` later."""
    os.kill(run.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(run.pid, signal.SIGCONT)


def loop_writes(log: Path) -> list[str]:
    """The stall log of tests/chaos/stalled_kiosk.py: one line per call."""
    return log.read_text().splitlines() if log.exists() else []


def journal_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    return db


def _toml(data: dict[str, Any]) -> str:
    """Just enough TOML for a kiosk configuration (tables one level deep and one nested)."""
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        raise TypeError(f"no TOML for {v!r}")

    lines: list[str] = []
    for name, sec in data.items():
        lines.append(f"[{name}]")
        subs = {k: v for k, v in sec.items() if isinstance(v, dict)}
        for k, v in sec.items():
            if not isinstance(v, dict):
                lines.append(f"{k} = {val(v)}")
        for sub, table in subs.items():
            lines.append(f"[{name}.{sub}]")
            lines += [f"{k} = {val(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


EXPECTED_OUTCOME = {
    ("cash", "success"): "success", ("cash", "failure"): "failed_voucher",
    ("cash", "unknown"): "success", ("cash", "unknown_failure"): "failed_voucher",
    ("card", "success"): "success", ("card", "failure"): "failed_refunded",
    ("card", "unknown"): "success", ("card", "unknown_failure"): "failed_refunded",
    ("qr", "success"): "success", ("qr", "failure"): "failed_voucher",
    ("qr", "unknown"): "success", ("qr", "unknown_failure"): "failed_voucher",
}


def outcome_of(rig: Rig, ref: str | None) -> str | None:
    if not ref or not rig.journal_path.exists():
        return None
    db = journal_db(rig.journal_path)
    try:
        row = db.execute("SELECT outcome FROM transactions WHERE ref=?", (ref,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def report(what: str, rig: ChaosRig, run: Run | None, problems: list[str]) -> str:
    """The failure message: what was done, what went wrong, the kiosk's own words."""
    lines = [f"{what}: {len(problems)} problem(s) (work folder {rig.dir})"]
    lines += [f"  - {p}" for p in problems]
    db = journal_db(rig.journal_path)
    try:
        tail = [(r["ref"], r["kind"], json.loads(r["data"])) for r in db.execute(
            "SELECT * FROM (SELECT * FROM events ORDER BY seq DESC LIMIT 60) ORDER BY seq")]
    except sqlite3.Error as exc:
        tail = [(None, f"(journal unreadable: {exc})", {})]
    finally:
        db.close()
    lines.append("journal (last 60 events):")
    for ref, kind, d in tail:
        if kind in ("CardReceipt", "QrOrderCreated"):
            d = {"ref": d.get("ref")}
        lines.append(f"    {ref} {kind} {json.dumps(d, sort_keys=True)}")
    rec = rig.acceptor.record
    lines.append(f"acceptor: stacked {rec.stacked} returned {rec.returned} jammed {rec.jammed}"
                 f" vend_valid_acked {rec.vend_valid_acked}")
    lg = rig.terminal.ledger
    lines.append(f"terminal: authorised {dict(lg.authorised)} reversed {dict(lg.reversed)} "
                 f"{[(t.kind, t.outcome, t.receipt_no, t.delivered) for t in lg.transactions]}")
    lines.append(f"aggregator: {rig.aggregator.credits}; wallet: {rig.gateway.ledger}")
    if run is not None:
        lines.append(f"kiosk exit {run.returncode} summary {run.summary}")
        lines.append(run.output(6000))
    return "\n".join(lines)


def open_refs(rig: Rig) -> list[str]:
    """References still open in the journal (read without taking any lock)."""
    if not rig.journal_path.exists():
        return []
    db = sqlite3.connect(f"file:{rig.journal_path}?mode=ro", uri=True, timeout=5)
    try:
        return [r[0] for r in db.execute("SELECT ref FROM transactions WHERE status='open'")]
    except sqlite3.Error:
        return ["?"]
    finally:
        db.close()


def any_refs(rig: Rig) -> bool:
    if not rig.journal_path.exists():
        return False
    db = sqlite3.connect(f"file:{rig.journal_path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT 1 FROM transactions LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        db.close()


def walk_away(rig: Rig, run: Run, grace: float = 6.0, timeout: float = 60.0) -> bool:
    """The customer leaves when the payment screen gave up (the transaction is closed, the
    kiosk back at the payment choice, the scripted customer waiting for a result that will
    not come): once every transaction is closed and the kiosk has not exited `grace` s later,
    it gets SIGTERM (headless: a clean stop). True if it had to be sent."""
    deadline = time.monotonic() + timeout
    closed_since: float | None = None
    while time.monotonic() < deadline and run.proc.poll() is None:
        if any_refs(rig) and not open_refs(rig):
            closed_since = closed_since or time.monotonic()
            if time.monotonic() - closed_since > grace:
                run.proc.send_signal(signal.SIGTERM)
                return True
        else:
            closed_since = None
        time.sleep(0.2)
    return False
