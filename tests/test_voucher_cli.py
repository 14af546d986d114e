"""`kiosk voucher find | show | reprint | void | resend` as a technician runs them: the real
command in a subprocess, on a journal written by the runtime (simulated devices, the SMS
gateway simulator on 127.0.0.1). Lists mask codes and numbers; showing, reprinting, voiding
and resending are journaled with who did it; a used voucher cannot be voided; the books
stay balanced after a void."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from kiosk import cli, cli_voucher, vouchers
from kiosk import events as ev
from kiosk.config import load
from kiosk.engine import Phase, Txn
from kiosk.journal import Journal
from kiosk.runtime import Runtime
from kiosk.sms_sim import SmsGatewaySimulator
from tests.events import until
from tests.test_voucher_delivery import GLOBE, TO, a_voucher, choose, devices, sent, with_sms

ROOT = Path(__file__).resolve().parent.parent


async def _build(folder: Path, sim: SmsGatewaySimulator) -> dict[str, Any]:
    s = with_sms(replace(load(data_dir=folder), query_interval_s=0.01), sim)
    rt = Runtime(s, devices=devices(s))
    await rt.start()
    try:
        ref_a, code_a = await a_voucher(rt, 5000)            # active, sent by SMS
        await until(lambda: sent(rt, ref_a), "voucher A's SMS")
        ref_b, code_b = await a_voucher(rt, 2000)            # used as payment below
        await until(lambda: sent(rt, ref_b), "voucher B's SMS")
        ref_c = await choose(rt, "globe-load", 2000, "voucher")
        rt.post(ev.VoucherEntered(code_b))
        await until(lambda: rt.state.phase is Phase.RESULT, "paid with voucher B")
        rt.post(ev.Done())
    finally:
        await rt.stop()
    return {"ref_a": ref_a, "code_a": code_a, "ref_b": ref_b, "code_b": code_b,
            "ref_c": ref_c}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("built")
    with SmsGatewaySimulator() as sim:
        facts = asyncio.run(_build(folder, sim))
    return {**facts, "folder": folder}


@pytest.fixture
def kiosk(built: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """A copy of the built data folder for one test (the commands change it)."""
    folder = tmp_path / "data"
    shutil.copytree(built["folder"], folder, ignore=shutil.ignore_patterns("kiosk.lock"))
    return {**built, "folder": folder}


def run(k: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk.cli", *args, "--data-dir",
                           str(k["folder"])], capture_output=True, text=True, timeout=120,
                          check=False, cwd=ROOT)


def events(k: dict[str, Any], ref: str, kind: str) -> list[dict[str, Any]]:
    j = Journal(k["folder"] / "journal.sqlite3", create=False)
    try:
        return [e.data for e in j.events(ref) if e.kind == kind]
    finally:
        j.close()


def test_find_by_number_reference_and_last_digits_masks_codes(kiosk: dict[str, Any]) -> None:
    a, b = kiosk["code_a"], kiosk["code_b"]
    r = run(kiosk, "voucher", "find", "--number", "0917 123 4567")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("CODE")
    assert "************" + b[-4:] in lines[1] and "redeemed" in lines[1]   # newest first
    assert "************" + a[-4:] in lines[2] and "active" in lines[2] and "sent" in lines[2]
    assert "0917***4567" in lines[2]
    for secret in (a, b, a[:12], b[:12], GLOBE):
        assert secret not in r.stdout
    r = run(kiosk, "voucher", "find", "--ref", kiosk["ref_a"], "--json")
    [row] = json.loads(r.stdout)
    assert (row["code"], row["amount"], row["status"], row["sms"], row["sent_count"]) == (
        "************" + a[-4:], 5000, "active", "sent", 1)
    assert row["msisdn"] == "0917***4567" and row["expires"] > "2026"
    r = run(kiosk, "voucher", "find", "--last4", a[-4:], "--json")
    assert [v["ref"] for v in json.loads(r.stdout)] == [kiosk["ref_a"]]
    r = run(kiosk, "voucher", "find", "--number", "+639181234567")
    assert (r.returncode, r.stdout) == (1, "")
    assert run(kiosk, "voucher", "find", "--last4", "12").returncode == 64
    assert run(kiosk, "voucher", "find", "--number", "x", "--ref", "y").returncode == 64


def test_show_gives_the_full_code_and_journals_who(kiosk: dict[str, Any]) -> None:
    a = kiosk["code_a"]
    r = run(kiosk, "voucher", "show", a[-4:], "--by", "alice")
    assert r.returncode == 0, r.stderr
    assert vouchers.pretty(a) in r.stdout and a in r.stdout and "PHP 50.00" in r.stdout
    assert "shown by alice" in r.stdout
    [shown] = events(kiosk, kiosk["ref_a"], "VoucherShown")
    assert (shown["by"], shown["code_last4"]) == ("alice", a[-4:]) and a not in str(shown)
    r = run(kiosk, "voucher", "show", vouchers.pretty(a), "--by", "bob", "--json")
    assert json.loads(r.stdout)["code"] == a
    assert len(events(kiosk, kiosk["ref_a"], "VoucherShown")) == 2
    # `journal show` still masks it.
    r = run(kiosk, "journal", "show", kiosk["ref_a"])
    assert r.returncode == 0 and a not in r.stdout and "VoucherShown" in r.stdout


def test_reprint_writes_the_slip_with_its_expiry_and_journals_it(kiosk: dict[str, Any]) -> None:
    a = kiosk["code_a"]
    r = run(kiosk, "voucher", "reprint", a, "--by", "carol")
    assert r.returncode == 0, r.stderr
    j = Journal(kiosk["folder"] / "journal.sqlite3", create=False)
    expires = (j.voucher(a) or {})["expires"]
    j.close()
    assert "VOUCHER (REPRINT)" in r.stdout and f"Voucher: {vouchers.pretty(a)}" in r.stdout
    assert f"Valid until: {expires}" in r.stdout and "Voucher value: PHP 50.00" in r.stdout
    assert "not printed (no receipt printer" in r.stderr       # the demo's simulated one
    [rec] = events(kiosk, kiosk["ref_a"], "VoucherReprinted")
    assert (rec["by"], rec["printed"]) == ("carol", False)
    r = run(kiosk, "voucher", "reprint", kiosk["code_b"], "--by", "carol")
    assert r.returncode == 65 and "redeemed" in r.stderr


def test_void_refuses_a_used_voucher_and_voids_an_active_one_with_balanced_books(
        kiosk: dict[str, Any]) -> None:
    a, b = kiosk["code_a"], kiosk["code_b"]
    assert run(kiosk, "report", "x").returncode == 0
    r = run(kiosk, "voucher", "void", b, "--by", "dave", "--reason", "customer refunded")
    assert r.returncode == 65 and "used already" in r.stderr
    assert events(kiosk, kiosk["ref_b"], "VoucherVoided") == []
    r = run(kiosk, "voucher", "void", a, "--by", "dave", "--reason", "refunded in cash")
    assert r.returncode == 0, r.stderr
    assert "voided by dave" in r.stdout and a not in r.stdout
    [rec] = events(kiosk, kiosk["ref_a"], "VoucherVoided")
    assert rec == {"ref": kiosk["ref_a"], "code_last4": a[-4:], "voucher_seq": rec["voucher_seq"],
                   "amount": 5000, "was": "active", "by": "dave", "reason": "refunded in cash"}
    j = Journal(kiosk["folder"] / "journal.sqlite3", create=False)
    try:
        assert (j.voucher(a) or {})["status"] == "void"
        posted = j.db.execute("SELECT ref, amount, method FROM postings WHERE kind ="
                              " 'voucher_voided'").fetchall()
        assert [tuple(p) for p in posted] == [(kiosk["ref_a"], 5000, "active")]
        # A void voucher cannot pay.
        ref = j.open_transaction(Txn(msisdn=GLOBE, operator="globe", product_id="globe-load",
                                     amount=5000, method="voucher"))
        refused = j.redeem_voucher(ref, a, "2026-01-01")
        assert isinstance(refused, ev.VoucherRefused) and refused.reason == "void"
        j.enter(ref, ev.CloseTransaction(ref, "cancelled", 0, 0, 0, 0))
    finally:
        j.close()
    r = run(kiosk, "report", "x")
    assert r.returncode == 0, r.stdout + r.stderr        # no discrepancy: books balanced
    r = run(kiosk, "voucher", "void", a, "--by", "dave", "--reason", "again")
    assert r.returncode == 65 and "void already" in r.stderr
    # Resend / reprint of a void voucher: refused.
    assert run(kiosk, "voucher", "resend", a, "--by", "dave").returncode == 65


def test_a_voucher_held_for_a_pending_top_up_cannot_be_voided(kiosk: dict[str, Any]) -> None:
    j = Journal(kiosk["folder"] / "journal.sqlite3", create=False)
    ref = j.open_transaction(Txn(msisdn=GLOBE, operator="globe", product_id="globe-load",
                                 amount=2000, method="cash"))
    code = vouchers.new_code()
    j.append(ref, ev.VoucherIssued(ref, code, 2000, held=True, expires="2099-01-01"))
    j.close()
    r = run(kiosk, "voucher", "void", code, "--by", "erin", "--reason", "x")
    assert r.returncode == 65 and "pending" in r.stderr


def test_usage_errors_and_unknown_vouchers(kiosk: dict[str, Any]) -> None:
    a = kiosk["code_a"]
    assert run(kiosk, "voucher", "show", a).returncode == 64                # no --by
    assert run(kiosk, "voucher", "show", a, "--by", " ").returncode == 64
    assert run(kiosk, "voucher", "show", "12345", "--by", "x").returncode == 64
    assert run(kiosk, "voucher", "void", a, "--by", "x").returncode == 64   # no --reason
    r = run(kiosk, "voucher", "show", vouchers.new_code(), "--by", "x")
    assert r.returncode == 1 and "no voucher" in r.stderr
    assert run(kiosk, "voucher", "show", "0000", "--by", "x").returncode == 1
    # Four digits that name two vouchers: say which.
    j = Journal(kiosk["folder"] / "journal.sqlite3", create=False)
    twin = str((int(a[0]) + 1) % 10) + a[1:]
    j.append("K0001-X-000999", ev.VoucherIssued("K0001-X-000999", twin, 100))
    j.close()
    r = run(kiosk, "voucher", "show", a[-4:], "--by", "x")
    assert r.returncode == 64 and "--ref" in r.stderr and a not in r.stdout + r.stderr
    r = run(kiosk, "voucher", "show", a[-4:], "--ref", kiosk["ref_a"], "--by", "x")
    assert r.returncode == 0 and a in r.stdout


def test_resend_without_sms_configured_says_so(kiosk: dict[str, Any]) -> None:
    r = run(kiosk, "voucher", "resend", kiosk["code_a"], "--by", "x")
    if getattr(load(), "sms", None) is None:
        assert r.returncode == 2 and "SMS is not configured" in r.stderr


def test_resend_sends_the_voucher_again_and_journals_who(
        kiosk: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (`kiosk.cli.main`): the configuration loader does not read [sms] yet, so
    the settings with the gateway simulator are handed to the command directly."""
    a = kiosk["code_a"]
    with SmsGatewaySimulator() as sim:
        s = with_sms(load(data_dir=kiosk["folder"]), sim)
        monkeypatch.setattr(cli_voucher, "_settings", lambda args: s)
        assert cli.main(["voucher", "resend", a[-4:], "--by", "frank"]) == 0
        [text] = sim.texts_to(TO)
        assert vouchers.pretty(a) in text and "PHP 50.00" in text
        again = [e for e in events(kiosk, kiosk["ref_a"], "VoucherSent") if e["by"] == "frank"]
        assert len(again) == 1 and again[0]["gateway_id"] == sim.messages[0].id
        assert sim.messages[0].client_ref.startswith(f"{kiosk['ref_a']}.v")
        sim.set_mode("down")
        assert cli.main(["voucher", "resend", a, "--by", "frank"]) == 69
        sim.set_mode("refuse")
        assert cli.main(["voucher", "resend", a, "--by", "frank"]) == 65
        [refused] = events(kiosk, kiosk["ref_a"], "VoucherSmsRefused")
        assert (refused["by"], refused["reason"]) == ("frank", "invalid_number")
    out = capsys.readouterr()
    assert "sent by SMS to 0917***4567" in out.out and a not in out.out + out.err


def test_sim_sms_records_what_it_is_sent() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "sim", "sms", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        r = httpx.post(url + "/v1/messages", headers={"Authorization": "Bearer kiosk-sms-key"},
                       json={"to": TO, "from": "TOPUP", "text": "hi", "client_ref": "x"})
        assert r.status_code == 201
        deadline = time.monotonic() + 5
        while not httpx.get(url + "/_sim/messages").json()["messages"]:
            assert time.monotonic() < deadline
        assert httpx.get(url + "/_sim/messages").json()["messages"][0]["text"] == "hi"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_reprint_prints_on_a_real_escpos_printer_when_the_kiosk_is_stopped(
        kiosk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ESC/POS driver on the byte-exact printer simulator's pty, configured as the
    kiosk's printer ("escpos" on a port): the slip is on its paper, line for line."""
    from drivers.printer.escpos_sim import EscposSimulator
    from kiosk.config import DeviceSettings
    from kiosk.lock import FolderLock
    a = kiosk["code_a"]
    printer = EscposSimulator().start()
    try:
        s = load(data_dir=kiosk["folder"])
        s = replace(s, devices={**s.devices, "printer": DeviceSettings(
            "escpos", {"port": printer.link})})
        monkeypatch.setattr(cli_voucher, "_settings", lambda args: s)
        with FolderLock(kiosk["folder"]):            # the kiosk runs: its printer is busy
            assert cli.main(["voucher", "reprint", a, "--by", "gina"]) == 0
        assert printer.receipts == []
        assert cli.main(["voucher", "reprint", a, "--by", "gina"]) == 0
        deadline = time.monotonic() + 10
        while not printer.receipts:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [paper] = printer.receipts
        assert f"Voucher: {vouchers.pretty(a)}" in paper.lines and paper.qr == [a]
        assert any(line.startswith("Valid until: ") for line in paper.lines)
    finally:
        printer.stop()
    printed = [e["printed"] for e in events(kiosk, kiosk["ref_a"], "VoucherReprinted")]
    assert printed == [False, True]
