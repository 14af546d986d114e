"""The `kiosk` command as an operator runs it: a real subprocess, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KIOSK = [sys.executable, "-m", "kiosk.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIOSK, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_config_check_default_ok() -> None:
    p = run("config", "check")
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout and "K0001" in p.stdout
    j = json.loads(run("config", "check", "--json").stdout)
    assert j["ok"] is True and j["currency"] == "PHP" and "globe" in j["operators"]


def test_config_check_broken_file_names_file_key_reason(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config" / "catalog.toml", tmp_path / "catalog.toml")
    text = (ROOT / "config" / "kiosk.toml").read_text()
    (tmp_path / "kiosk.toml").write_text(text.replace("idle_timeout_s = 60",
                                                      'idle_timeout_s = "soon"'))
    p = run("config", "check", str(tmp_path / "kiosk.toml"))
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    line = p.stderr.strip()
    assert str(tmp_path / "kiosk.toml") in line and "ui.idle_timeout_s" in line
    assert "must be an integer" in line and '"soon"' in line
    j = json.loads(run("config", "check", str(tmp_path / "kiosk.toml"), "--json").stdout)
    assert (j["ok"], j["key"]) == (False, "ui.idle_timeout_s")


def test_journal_list_and_show(tmp_path: Path) -> None:
    # A real journal with one finished transaction, written by the runtime itself.
    code = f"""
import asyncio
from kiosk import config, events as ev
from kiosk.runtime import Runtime
async def main():
    rt = Runtime(config.load(data_dir={str(tmp_path)!r}))
    for d in ("printer", "backend"):
        rt.devices[d].delay_s = 0.01
    await rt.start()
    while not rt.devices["cash"].ok:               # the ID-003 acceptor resets at start
        await asyncio.sleep(0.02)
    for e in (ev.Start(), ev.NumberEntered("09171234567"), ev.ConfirmNumber(True),
              ev.SubscriberChecked("09171234567", "globe", ("globe-load",)),
              ev.ChooseProduct("globe-load", 2000), ev.ChoosePayment("cash")):
        rt.post(e)
    sim = rt.devices["cash"].simulator
    while sim.status().name != "IDLING":
        await asyncio.sleep(0.02)
    sim.insert(2000)
    while rt.state.phase.value != "result":
        await asyncio.sleep(0.01)
    print(rt.state.txn.ref)
    await rt.stop()
asyncio.run(main())
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    ref = p.stdout.strip().splitlines()[-1]
    lst = run("journal", "list", "--data-dir", str(tmp_path))
    assert lst.returncode == 0 and ref in lst.stdout and "success" in lst.stdout
    rows = json.loads(run("journal", "list", "--data-dir", str(tmp_path), "--json").stdout)
    assert rows[0]["ref"] == ref and rows[0]["paid"] == 2000
    assert rows[0]["msisdn"] == "0917***4567"          # masked for the operator's screen
    show = run("journal", "show", ref, "--data-dir", str(tmp_path))
    assert show.returncode == 0
    assert "NoteCredited" in show.stdout and "TopUpSucceeded" in show.stdout
    assert "09171234567" not in show.stdout
    data = json.loads(run("journal", "show", ref, "--data-dir", str(tmp_path), "--json").stdout)
    kinds = [e["kind"] for e in data["events"]]
    assert kinds.index("NoteCredited") < kinds.index("TopUp") < kinds.index("TopUpSucceeded")
    assert "09171234567" not in json.dumps(data)
    missing = run("journal", "show", "K0001-999999", "--data-dir", str(tmp_path))
    assert missing.returncode == 1 and "no transaction" in missing.stderr


@pytest.mark.parametrize("sig", ["TERM"])
def test_run_opens_the_window_and_stops_cleanly_on_sigterm(tmp_path: Path, sig: str) -> None:
    env = {**os.environ, "SDL_VIDEODRIVER": "offscreen", "KIVY_HOME": str(tmp_path / "kivy")}
    proc = subprocess.Popen([*KIOSK, "run", "--windowed", "--data-dir", str(tmp_path)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if "attract screen shown" in line:
            break
    else:
        pytest.fail("the kiosk never showed its first screen:\n" + "".join(seen[-30:]))
    proc.send_signal(getattr(__import__("signal"), f"SIG{sig}"))
    rest, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, rest[-2000:]
    assert (tmp_path / "journal.sqlite3").exists()


def test_run_without_display_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    p = subprocess.run([*KIOSK, "run", "--data-dir", str(tmp_path)], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=60)
    assert p.returncode == 1 and "no display" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("args", [["--bogus"], ["journal"], ["diag", "sim", "--wait", "x"]])
def test_a_wrong_command_line_exits_64_not_a_result_code(args: list[str]) -> None:
    p = run(*args)
    assert p.returncode == 64 and "usage:" in p.stderr and "Traceback" not in p.stderr


PROMPTPAY = "00020101021129370016A000000677010111011300668999999995802TH53037646304FE29"


def test_qr_decode_expands_templates_and_checks_the_crc() -> None:
    p = run("qr", "decode", PROMPTPAY)
    assert p.returncode == 0 and "CRC valid" in p.stdout
    assert "  00 = A000000677010111" in p.stdout             # tag 29's sub-tag, indented
    data = json.loads(run("qr", "decode", PROMPTPAY, "--json").stdout)
    [acct] = [f for f in data["fields"] if f["tag"] == "29"]
    assert data["crc_valid"] and acct["fields"][0]["value"] == "A000000677010111"


@pytest.mark.parametrize("payload,words", [
    (PROMPTPAY[:-4] + "0000", "CRC mismatch"),
    (PROMPTPAY[:30], "does not end with a CRC"),
    ("0002010102116304" + "ABCD", "CRC mismatch"),
])
def test_qr_decode_rejects_bad_payloads_with_exit_1(payload: str, words: str) -> None:
    p = run("qr", "decode", payload)
    assert p.returncode == 1 and words in p.stderr and "Traceback" not in p.stderr
    assert json.loads(run("qr", "decode", payload, "--json").stdout)["valid"] is False


def test_qr_encode_makes_a_dynamic_payload_that_decodes() -> None:
    p = run("qr", "encode", "--amount", "99.00", "--reference", "K0001-000042")
    assert p.returncode == 0
    payload = p.stdout.strip()
    fields = {f["tag"]: f for f in json.loads(run("qr", "decode", payload, "--json")
                                              .stdout)["fields"]}
    assert fields["01"]["value"] == "12" and fields["54"]["value"] == "99.00"
    assert fields["53"]["value"] == "608"
    assert {"tag": "05", "name": "reference label", "value": "K0001-000042"} in \
        fields["62"]["fields"]
    bad = run("qr", "encode", "--amount", "99.001")
    assert bad.returncode == 1 and "decimals" in bad.stderr


def test_sim_backend_serves_until_stopped(tmp_path: Path) -> None:
    import socket
    import signal
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*KIOSK, "sim", "backend", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/oauth/token", method="POST",
                                     data=json.dumps({"client_id": "kiosk",
                                                      "client_secret": "secret",
                                                      "grant_type": "client_credentials"}
                                                     ).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert "access_token" in json.loads(r.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0


def test_sim_wallet_serves_and_sim_pay_pays_an_order() -> None:
    import signal
    import socket
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([*KIOSK, "sim", "wallet", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        # Nothing to pay yet: a clear error, exit 1.
        r = subprocess.run([*KIOSK, "sim", "pay", "K0001-000077", "--url", url], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "no order K0001-000077" in r.stderr
        req = urllib.request.Request(
            f"{url}/v1/orders", method="POST",
            data=json.dumps({"reference": "K0001-000077", "amount": 5000, "currency": "PHP",
                             "expires_in": 60}).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": "Bearer kiosk-demo-key"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            order = json.loads(resp.read())
        assert order["status"] == "pending" and "5405" + "50.00" in order["qr_payload"]
        r = subprocess.run([*KIOSK, "sim", "pay", "K0001-000077", "--url", url], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.startswith("paid K0001-000077")
        r = subprocess.run([*KIOSK, "sim", "pay", "K0001-000077", "--url", url], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "was not paid" in r.stderr       # never paid twice
        with urllib.request.urlopen(f"{url}/_sim/state", timeout=5) as resp:
            assert json.loads(resp.read())["ledger"] == {"K0001-000077": 5000}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0


def test_sim_pay_without_a_gateway_is_a_clear_error() -> None:
    r = subprocess.run([*KIOSK, "sim", "pay", "K0001-000001", "--url", "http://127.0.0.1:9"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "not reachable" in r.stderr


def test_diag_card_through_the_command(tmp_path: Path) -> None:
    """`kiosk diag card` against a ZVT terminal simulator on a pty: paid, then reversed."""
    from drivers.card_terminal.simulator import ZvtSimulator
    with ZvtSimulator() as sim:
        sim.step_s = 0.02
        r = subprocess.run([*KIOSK, "diag", "card", "--port", sim.link, "--amount", "150",
                            "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        receipts = [tx.receipt_no for tx in sim.ledger.transactions if tx.kind == "payment"]
        assert len(receipts) == 1
        assert sim.ledger.authorised == {receipts[0]: 150}
        assert sim.ledger.reversed == {receipts[0]: 150}
        assert "Insert, tap or swipe your card" in json.dumps(out)
    bad = subprocess.run([*KIOSK, "diag", "card", "--port", sim.link, "--amount", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 64 and "--amount" in bad.stderr
    gone = subprocess.run([*KIOSK, "diag", "card", "--port", str(tmp_path / "none"),
                           "--amount", "100"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert gone.returncode == 4


def _journal_with_sales(tmp_path: Path) -> tuple[str, str]:
    """A journal as the runtime writes it: one cash top-up (three notes) and an open QR
    sale found unfinished at a restart."""
    from kiosk import events as ev
    from kiosk.engine import Txn
    from kiosk.journal import Journal
    j = Journal(tmp_path / "journal.sqlite3")
    ref = j.open_transaction(Txn(msisdn="09171234567", operator="globe",
                                 product_id="globe-load", amount=5000, method="cash"))
    for v in (2000, 2000, 2000):
        j.append(ref, ev.NoteCredited(v))
    j.append(ref, ev.TopUp(ref, "09171234567", "globe", "globe-load", 5000))
    j.append(ref, ev.TopUpSucceeded(ref, "OP1"))
    j.append(ref, ev.VoucherIssued(ref, "1234567812345670", 1000))
    j.append(ref, ev.CloseTransaction(ref, "success", 6000, 5000, 1000, 0))
    open_ref = j.open_transaction(Txn(msisdn="09171234567", operator="globe",
                                      product_id="globe-load", amount=2000, method="qr"))
    j.append(open_ref, ev.RecoveryStarted(open_ref, "pay_qr", 0))
    j.close()
    return ref, open_ref


def test_reports_cashbox_and_unresolved(tmp_path: Path) -> None:
    ref, open_ref = _journal_with_sales(tmp_path)
    d = ["--data-dir", str(tmp_path)]
    x = run("report", "x", *d)
    assert x.returncode == 0, x.stderr
    assert "X REPORT" in x.stdout and "PHP 60.00" in x.stdout
    xj = json.loads(run("report", "x", "--json", *d).stdout)
    assert xj["kind"] == "X" and xj["discrepancies"] == []
    assert run("report", "z", *d).returncode == 64                  # --by is required
    z = json.loads(run("report", "z", "--by", "tech1", "--json", *d).stdout)
    assert (z["kind"], z["number"], z["closed_by"]) == ("Z", 1, "tech1")
    after = json.loads(run("report", "x", "--json", *d).stdout)
    assert after["number"] == 2 and after["cash"]["total"] == 0       # counters start again
    hist = run("report", "history", *d)
    assert hist.returncode == 0 and "tech1" in hist.stdout
    assert json.loads(run("report", "show", "1", "--json", *d).stdout)["number"] == 1
    assert run("report", "show", "9", *d).returncode == 1
    # The cash box still holds the notes (a Z does not empty it); removal is journaled.
    box = run("cashbox", *d)
    assert box.returncode == 0 and "PHP 60.00 in 3 notes" in box.stdout
    assert run("cashbox", "remove", *d).returncode == 64               # who?
    rm = run("cashbox", "remove", "--by", "tech1", "--counted", "60.00", *d)
    assert rm.returncode == 0 and "difference PHP 0.00" in rm.stdout
    assert "REMOVED" in run("cashbox", *d).stdout
    assert run("cashbox", "insert", "--by", "tech1", *d).returncode == 0
    assert "PHP 0.00 in 0 notes" in run("cashbox", *d).stdout
    # Open and recovered transactions, for the technician.
    un = run("journal", "list", "--unresolved", *d)
    assert un.returncode == 0 and open_ref in un.stdout and ref not in un.stdout
    assert "found pay_qr" in un.stdout and "still open" in un.stdout
    rows = json.loads(run("journal", "list", "--unresolved", "--json", *d).stdout)
    assert [r["ref"] for r in rows] == [open_ref]


def test_a_note_in_doubt_is_listed_as_unresolved(tmp_path: Path) -> None:
    """A note neither credited nor returned (booked in doubt) stays on the technician's list
    with its value and why, even after its transaction closed with a voucher for it."""
    from kiosk import events as ev
    from kiosk.engine import Txn
    from kiosk.journal import Journal
    j = Journal(tmp_path / "journal.sqlite3", "K0001", "PHP")
    ref = j.open_transaction(Txn(msisdn="09171234567", operator="globe",
                                 product_id="globe-load-any", amount=10000, method="cash"))
    j.append(ref, ev.StackNote(5000, "ab12:3"))
    j.append(None, ev.NoteInDoubt(5000, "ab12:3", "stacker_jam"))
    j.append(ref, ev.VoucherIssued(ref, "1111222233334444", 5000))
    j.append(ref, ev.CloseTransaction(ref, "cancelled", 5000, 0, 5000, 0))
    j.close()
    d = ["--data-dir", str(tmp_path)]
    un = run("journal", "list", "--unresolved", *d)
    assert un.returncode == 0, un.stderr
    assert ref in un.stdout and "PHP 50.00 in doubt (stacker_jam" in un.stdout
    [row] = json.loads(run("journal", "list", "--unresolved", "--json", *d).stdout)
    assert (row["ref"], row["notes_in_doubt"]) == (ref, [5000])
