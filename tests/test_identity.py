"""A journal nothing can silently lose: its identity, its high-water mark, damage at start.

Each case is made the way it happens: a journal emptied or deleted, a WAL file deleted or
with one flipped byte after a kill -9, another folder's journal copied in, a damaged
database file. The kiosk refuses to start with one line that says what to do (exit 65),
never starts on it as a new kiosk and never forgets money silently.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk import events as ev
from kiosk import identity
from kiosk.engine import Txn
from kiosk.journal import Journal, JournalRefused

ROOT = Path(__file__).resolve().parent.parent
KIOSK = [sys.executable, "-m", "kiosk.cli"]
MSISDN = "09171234567"


def cash_txn() -> Txn:
    return Txn(msisdn=MSISDN, operator="globe", product_id="globe-load-any", amount=22000,
               method="cash")


def kiosk(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIOSK_LOG_LEVEL": "WARNING"}
    return subprocess.run([*KIOSK, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def headless(folder: Path) -> subprocess.CompletedProcess[str]:
    return kiosk("run", "--headless", "--exit-when-settled", "--data-dir", str(folder))


def paid(path: Path, ref: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT paid FROM transactions WHERE ref = ?", (ref,)).fetchone()[0])
    finally:
        db.close()


WRITER = """
import os, sys
from kiosk import events as ev
from kiosk.engine import Txn
from kiosk.journal import Journal
j = Journal(sys.argv[1])
j.db.execute("PRAGMA wal_autocheckpoint=0")
ref = j.open_transaction(Txn(msisdn="09171234567", operator="globe",
                             product_id="globe-load-any", amount=22000, method="cash"))
for i, value in enumerate((2000, 10000, 5000, 5000)):
    j.enter(None, ev.StackNote(value, key=f"1:{i}"))
    j.enter(None, ev.NoteCredited(value, key=f"1:{i}"))
print(ref, flush=True)
os._exit(0)         # like kill -9: no checkpoint, everything stays in the WAL
"""


def killed_writer(path: Path) -> str:
    """A kiosk that wrote a transaction with four notes (220.00) and died: the events are
    in the WAL file only."""
    out = subprocess.run([sys.executable, "-c", WRITER, str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=60)
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    return out.stdout.strip()


# ---------------------------------------------------------------- identity
def test_a_new_journal_has_an_identity_written_twice(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal.sqlite3"
    j = Journal(path, "K0007")
    marker = json.loads((path.parent / identity.MARKER).read_text())
    assert marker["journal_id"] == j.identity.journal_id and marker["kiosk_id"] == "K0007"
    assert len(j.identity.journal_id) == 16
    assert oct((path.parent / identity.MARKER).stat().st_mode & 0o777) == "0o600"
    j.close()
    again = Journal(path, "K0007")
    assert again.identity == j.identity and again.ref_tag == j.ref_tag
    again.close()


@pytest.mark.parametrize("how", ["emptied", "deleted"])
def test_a_lost_journal_is_never_taken_for_a_new_kiosk(tmp_path: Path, how: str) -> None:
    folder = tmp_path / "data"
    path = folder / "journal.sqlite3"
    j = Journal(path)
    jid = j.identity.journal_id
    ref = j.open_transaction(cash_txn())
    j.close()
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if how == "emptied" and p == path:
            p.write_bytes(b"")
        else:
            p.unlink(missing_ok=True)
    with pytest.raises(JournalRefused, match=f"had journal {jid}.*kiosk journal restore"):
        Journal(path)
    assert path.exists() == (how == "emptied") and not identity.has_data(path)
    run = headless(folder)
    assert run.returncode == 65, run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"kiosk: {path} ") and "kiosk journal restore" in line
    assert not identity.has_data(path)                  # nothing was created in its place
    assert ref.endswith("-000001")


def test_references_differ_between_journals_of_one_kiosk(tmp_path: Path) -> None:
    """Two journals of kiosk K0001 (a new machine, a replaced disk) never make the same
    reference: a status look-up can only find this journal's own sale."""
    a = Journal(tmp_path / "a" / "journal.sqlite3")
    b = Journal(tmp_path / "b" / "journal.sqlite3")
    ra, rb = a.open_transaction(cash_txn()), b.open_transaction(cash_txn())
    assert ra.endswith("-000001") and rb.endswith("-000001") and ra != rb
    a.close()
    b.close()


def test_a_journal_from_another_folder_is_refused(tmp_path: Path) -> None:
    here, there = tmp_path / "here" / "journal.sqlite3", tmp_path / "there" / "journal.sqlite3"
    Journal(here).close()
    other = Journal(there)
    other.open_transaction(cash_txn())
    other.close()
    os.replace(there, here)
    with pytest.raises(JournalRefused, match="a journal from elsewhere was put here"):
        Journal(here)


def test_a_journal_written_before_identities_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal.sqlite3"
    j = Journal(path)
    ref = j.open_transaction(cash_txn())
    j.db.execute("DELETE FROM meta WHERE key IN ('journal_id', 'journal_created', 'ref_tag')")
    j.close()
    (path.parent / identity.MARKER).unlink()
    old = Journal(path)
    try:
        assert identity.read_marker(path.parent) == old.identity
        new_ref = old.open_transaction(cash_txn())
        assert new_ref.endswith("-000002") and new_ref != ref
    finally:
        old.close()


# ---------------------------------------------------------------- lost events
def test_a_deleted_wal_after_a_crash_is_refused_not_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal.sqlite3"
    Journal(path).close()
    ref = killed_writer(path)
    Path(f"{path}-wal").unlink()
    Path(f"{path}-shm").unlink(missing_ok=True)
    with pytest.raises(JournalRefused, match=r"events \d+\.\.\d+ are lost"):
        Journal(path)
    run = headless(path.parent)
    assert run.returncode == 65 and "are lost" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert ref


def test_one_flipped_byte_in_the_wal_is_refused_not_a_smaller_payment(tmp_path: Path) -> None:
    """A flipped byte in the WAL makes SQLite drop that frame and every one after it: the
    payment of 220.00 would read 180.00 or less, and the kiosk would start. It refuses."""
    path = tmp_path / "data" / "journal.sqlite3"
    Journal(path).close()
    ref = killed_writer(path)
    wal = Path(f"{path}-wal")
    data = bytearray(wal.read_bytes())
    page = int.from_bytes(data[8:12], "big")
    frames = (len(data) - 32) // (24 + page)
    at = 32 + (frames - 3) * (24 + page) + 24 + page // 2   # inside the third-last frame
    data[at] ^= 0x01
    wal.write_bytes(bytes(data))
    with pytest.raises(JournalRefused, match="are lost"):
        Journal(path)
    # What the kiosk would have believed without the mark:
    mark = identity.read_mark(path.parent)
    (path.parent / identity.MARK).unlink()
    j = Journal(path)
    assert j._last_seq < mark
    assert j.transaction(ref) is None or paid(path, ref) < 22000
    j.close()


def test_the_mark_follows_every_connection_of_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "data" / "journal.sqlite3"
    loop, gate = Journal(path), Journal(path, any_thread=True)
    ref = loop.open_transaction(cash_txn())
    gate.enter(None, ev.StackNote(2000, key="1:1"))
    seq = gate.enter(None, ev.NoteCredited(2000, key="1:1")).seq
    assert identity.read_mark(path.parent) == seq
    loop.append(ref, ev.NoteCredited(5000, key="1:2"))
    assert identity.read_mark(path.parent) == seq + 1
    loop.close()
    gate.close()


# ---------------------------------------------------------------- damage
def test_a_damaged_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    path = folder / "journal.sqlite3"
    j = Journal(path)
    for _ in range(50):
        j.open_transaction(cash_txn())
    j.close()
    data = bytearray(path.read_bytes())
    data[0:16] = b"not a database!!"
    path.write_bytes(bytes(data))
    run = headless(folder)
    assert run.returncode == 65, run.stderr
    [line] = run.stderr.strip().splitlines()
    assert "is damaged" in line and "kiosk journal restore" in line
    check = kiosk("journal", "check", "--data-dir", str(folder))
    assert check.returncode == 65 and "is damaged" in check.stderr


def test_damage_inside_a_table_is_found_at_start(tmp_path: Path) -> None:
    """A page of an index overwritten: SQLite opens the file and reads most of it, the
    check at start finds it."""
    folder = tmp_path / "data"
    path = folder / "journal.sqlite3"
    j = Journal(path)
    for _ in range(300):
        j.open_transaction(cash_txn())
    root = j.db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events_ref'"
                        ).fetchone()[0]
    page = j.db.execute("PRAGMA page_size").fetchone()[0]
    j.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page)
        f.write(os.urandom(page))
    run = headless(folder)
    assert run.returncode == 65, run.stderr
    assert "is damaged" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_journal_check_says_sound(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    j = Journal(folder / "journal.sqlite3")
    j.open_transaction(cash_txn())
    jid, tag = j.identity.journal_id, j.ref_tag
    j.close()
    check = kiosk("journal", "check", "--data-dir", str(folder))
    assert check.returncode == 0, check.stderr
    assert f"journal {jid} of kiosk K0001: sound; 1 transactions" in check.stdout
    assert f"K0001-{tag}-NNNNNN" in check.stdout
    empty = kiosk("journal", "check", "--data-dir", str(tmp_path / "none"))
    assert empty.returncode == 65 and "no journal here" in empty.stderr
    assert not (tmp_path / "none" / "journal.sqlite3").exists()
