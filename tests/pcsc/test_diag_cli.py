"""`kiosk diag sim`, the real command in a subprocess, against the session's pcscd + vpcd.

The virtual cards are pushed in from this process; the command finds the rig's pcscd through
PCSCLITE_CSOCK_NAME, like every PC/SC client here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from drivers.sim.virtual import PROFILES, VpcdCard

from .rig import PcscdRig

ROOT = Path(__file__).resolve().parents[2]
EMPTY = 0x0010                                 # SCARD_STATE_EMPTY


def run_diag(*args: str, sock: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": sock}
    proc = subprocess.run([sys.executable, "-m", "kiosk.cli", "diag", "sim", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


def as_json(proc: subprocess.CompletedProcess[str]) -> dict:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {proc.returncode}): {proc.stdout!r} "
                             f"{proc.stderr!r}") from None


@pytest.fixture
def diag(pcscd_rig: PcscdRig):
    def run(*args: str, **kw: float) -> subprocess.CompletedProcess[str]:
        return run_diag(*args, sock=pcscd_rig.sock, **kw)
    return run


@pytest.fixture
def card_in(pcscd_rig: PcscdRig):
    cards: list[VpcdCard] = []

    def push(name: str) -> VpcdCard:
        c = VpcdCard(PROFILES[name], port=pcscd_rig.port)
        c.insert()
        cards.append(c)
        return c
    yield push
    for c in cards:
        c.remove()
    # pcscd notices a pulled card at its next poll: let it, so the next test starts empty.
    pcscd_rig.wait_for_state(lambda s: bool(s & EMPTY))


def test_uicc_is_read_with_full_iccid(diag, card_in, pcscd_rig):
    card = card_in("uicc")
    proc = diag("--reader", pcscd_rig.reader_name + "$", "--wait", "10", "--json")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = as_json(proc)
    assert out["status"] == "read"
    assert out["reader"] == pcscd_rig.reader_name
    assert out["card_type"] == "UICC"
    assert out["iccid"] == PROFILES["uicc"].iccid            # in full: the technician's tool
    assert out["spn"] == "Globe"
    assert "ICCID" in out["readable"] and "SPN" in out["readable"]
    assert isinstance(out["read_ms"], (int, float)) and 0 <= out["read_ms"] < 1000
    assert out["readable"] == ["ICCID", "SPN"] and out["unreadable"] == {}
    # MF, EF.ICCID, DF.GSM, EF.SPN: the subscriber's IMSI and number are never read.
    assert card.card.selected() == [0x3F00, 0x2FE2, 0x7F20, 0x6F46]
    assert out["apdus"] == card.card.apdus == 6               # 4 SELECTs, 2 READ BINARY
    assert out.get("imsi") is None and out.get("msisdn") is None
    assert out["atr"].startswith("3B")
    assert not card.card.verify_seen                           # never presents a PIN


def test_human_output_shows_iccid_and_spn(diag, card_in):
    card_in("classic")
    proc = diag("--wait", "10")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert PROFILES["classic"].iccid in proc.stdout
    assert "Smart" in proc.stdout
    assert "SIM" in proc.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(proc.stdout)


def test_card_inserted_while_the_command_waits(diag, card_in):
    timer = threading.Timer(0.5, card_in, args=("uicc",))
    t0 = time.monotonic()
    timer.start()
    try:
        proc = diag("--wait", "10", "--json")
    finally:
        timer.join()
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = as_json(proc)
    assert out["iccid"] == PROFILES["uicc"].iccid
    # The command starts waiting ~0.25 s after launch here; the card goes in at 0.5 s and
    # pcscd sees it at its next poll: the read came after a real wait, not at once.
    assert out["waited_s"] >= 0.05
    assert elapsed < 8


def test_no_card_in_time_exits_2(diag):
    t0 = time.monotonic()
    proc = diag("--wait", "1", "--json")
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert as_json(proc)["status"] == "no_card"
    assert elapsed < 6


@pytest.mark.parametrize("profile,card_type", [
    ("bank", "not a SIM"), ("mute", "mute"), ("bad_luhn", None),
])
def test_cards_without_a_usable_iccid_exit_3(diag, card_in, profile, card_type):
    card_in(profile)
    proc = diag("--wait", "10", "--json")
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    out = as_json(proc)
    assert out["status"] == "not_sim"
    assert "iccid" not in out
    assert out.get("error")
    if card_type is not None:
        assert out["card_type"] == card_type


def test_reader_regex_matching_nothing_exits_4_and_lists_readers(diag, pcscd_rig):
    proc = diag("--reader", "^No Such Reader", "--wait", "1", "--json")
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    out = as_json(proc)
    assert out["status"] == "reader_problem"
    assert pcscd_rig.reader_name in out["readers"]


def test_invalid_reader_regex_exits_4_without_traceback(diag):
    proc = diag("--reader", "[", "--wait", "1", "--json")
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "regular expression" in as_json(proc)["error"]


def test_nan_wait_is_no_wait_not_a_crash(diag):
    proc = diag("--wait", "nan", "--json")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert as_json(proc)["status"] == "no_card"


def test_ctrl_c_while_waiting_stops_promptly_without_traceback(pcscd_rig):
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": pcscd_rig.sock}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.cli", "diag", "sim", "--wait", "30"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        time.sleep(1.5)                  # started (~0.25 s here) and waiting for a card
        assert proc.poll() is None, proc.communicate()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("mode", ["--json", None])
def test_pcsc_service_unreachable_exits_4(tmp_path, mode):
    args = ["--wait", "1"] + ([mode] if mode else [])
    proc = run_diag(*args, sock=str(tmp_path / "no-pcscd" / "pcscd.comm"))
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    if mode:
        out = as_json(proc)
        assert out["status"] == "reader_problem"
        assert "pcscd" in out["error"]
    else:
        assert "pcscd" in proc.stdout + proc.stderr


def test_help_documents_the_exit_codes(tmp_path):
    proc = run_diag("--help", sock=str(tmp_path / "unused"))
    assert proc.returncode == 0
    text = proc.stdout
    assert "exit codes" in text
    for code in ("0", "2", "3", "4"):
        assert any(line.strip().startswith(code + " ") for line in text.splitlines()), text
    assert "--reader" in text and "--wait" in text and "--json" in text
