"""The journal's second copy: an online backup while the kiosk writes, and a restore that
puts it back without ever reusing a reference."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kiosk import backup, identity
from kiosk import events as ev
from kiosk.engine import Txn
from kiosk.journal import Journal, JournalRefused
from kiosk.lock import FolderLock

ROOT = Path(__file__).resolve().parent.parent
KIOSK = [sys.executable, "-m", "kiosk.cli"]


def cash_txn() -> Txn:
    return Txn(msisdn="09171234567", operator="globe", product_id="globe-load-any",
               amount=5000, method="cash")


def kiosk(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIOSK_LOG_LEVEL": "WARNING"}
    return subprocess.run([*KIOSK, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def sale(j: Journal, n: int) -> str:
    ref = j.open_transaction(cash_txn())
    j.enter(None, ev.StackNote(5000, key=f"1:{n}"))
    j.enter(None, ev.NoteCredited(5000, key=f"1:{n}"))
    return ref


def test_an_online_backup_while_the_kiosk_writes(tmp_path: Path) -> None:
    data, copies = tmp_path / "data", tmp_path / "stick"
    j = Journal(data / "journal.sqlite3", any_thread=True)
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            written.append(sale(j, n))
            n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        runs = [kiosk("journal", "backup", "--to", str(copies), "--data-dir", str(data))
                for _ in range(3)]
    finally:
        stop.set()
        t.join()
    for run in runs:
        assert run.returncode == 0, run.stderr
    found = backup.copies(copies, "K0001", j.identity.journal_id)
    assert len(found) == 3 and found[0].last_seq >= found[-1].last_seq
    for c in found:
        jid, seq = backup.check_copy(c.path)
        assert (jid, seq) == (j.identity.journal_id, c.last_seq)
        assert oct(c.path.stat().st_mode & 0o777) == "0o600"
        db = sqlite3.connect(c.path)
        # Every sale in the copy is whole: a transaction with its note, never half of one.
        assert db.execute("SELECT COUNT(*) FROM transactions WHERE ref NOT IN"
                          " (SELECT ref FROM events WHERE kind = 'NoteCredited')"
                          " AND number < (SELECT MAX(number) FROM transactions)"
                          ).fetchone()[0] == 0
        db.close()
    assert oct(copies.stat().st_mode & 0o777) == "0o700"
    assert not [p for p in copies.iterdir() if p.name.startswith(".partial")]
    j.close()
    assert len(written) > 0


def test_only_the_newest_copies_of_this_journal_are_kept(tmp_path: Path) -> None:
    data, copies = tmp_path / "data", tmp_path / "stick"
    j = Journal(data / "journal.sqlite3")
    other = copies / "K0002-0123456789abcdef-20260101T000000Z-000000001.sqlite3"
    copies.mkdir()
    other.write_bytes(b"another kiosk's copy")
    for n in range(5):
        sale(j, n)
        backup.take(j.path, copies, "K0001", keep=2)
    kept = backup.copies(copies, "K0001")
    assert len(kept) == 2 and kept[0].last_seq == j._last_seq
    assert other.exists()
    j.close()


def test_a_copy_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Journal(data / "journal.sqlite3").close()
    (tmp_path / "file").write_text("not a folder")
    run = kiosk("journal", "backup", "--to", str(tmp_path / "file" / "x"), "--data-dir",
                str(data))
    assert run.returncode == 74 and run.stderr.startswith("kiosk: backup folder")
    assert len(run.stderr.strip().splitlines()) == 1


def test_restore_after_a_lost_wal_never_reuses_a_reference(tmp_path: Path) -> None:
    data, copies = tmp_path / "data", tmp_path / "stick"
    path = data / "journal.sqlite3"
    j = Journal(path)
    before = [sale(j, n) for n in range(3)]
    backup.take(path, copies, "K0001")
    after = [sale(j, n) for n in range(3, 5)]        # sent to the provider, then lost
    mark = j._last_seq
    j.close()
    # The journal is lost (the disk failed): the kiosk refuses until it is restored.
    path.unlink()
    with pytest.raises(JournalRefused, match="kiosk journal restore"):
        Journal(path)
    run = kiosk("journal", "restore", "--dir", str(copies), "--by", "tech-ana",
                "--data-dir", str(data))
    assert run.returncode == 0, run.stderr
    assert "restored from" in run.stdout
    assert f"events {backup.copies(copies)[0].last_seq + 1}..{mark} written after that copy"\
        in run.stdout
    j = Journal(path)
    try:
        assert [t.ref for t in j.transactions(limit=10)][::-1] == before
        [restored] = [e for e in j.events() if e.kind == "JournalRestored"]
        data_ = restored.data
        assert data_["lost_to"] == mark and data_["by"] == "tech-ana"
        assert data_["new_tag"] == j.ref_tag != data_["old_tag"]
        new = [j.open_transaction(cash_txn()) for _ in range(3)]
        assert not set(new) & set(after) and not set(new) & set(before)
        assert identity.read_mark(data) == j._last_seq
    finally:
        j.close()
    assert kiosk("journal", "check", "--data-dir", str(data)).returncode == 0


def test_restore_sets_the_damaged_files_aside(tmp_path: Path) -> None:
    data, copies = tmp_path / "data", tmp_path / "stick"
    path = data / "journal.sqlite3"
    j = Journal(path)
    sale(j, 1)
    backup.take(path, copies, "K0001")
    j.close()
    damaged = b"SQLite format 3\x00" + os.urandom(4096)
    path.write_bytes(damaged)
    run = kiosk("journal", "restore", "--dir", str(copies), "--by", "tech",
                "--data-dir", str(data))
    assert run.returncode == 0, run.stderr
    [aside] = [p for p in data.iterdir() if p.name.startswith("damaged-")]
    assert (aside / "journal.sqlite3").read_bytes() == damaged
    assert f"kept in {aside}" in run.stdout


def test_restore_refuses_while_the_kiosk_runs(tmp_path: Path) -> None:
    data, copies = tmp_path / "data", tmp_path / "stick"
    Journal(data / "journal.sqlite3").close()
    backup.take(data / "journal.sqlite3", copies, "K0001")
    with FolderLock(data):
        run = kiosk("journal", "restore", "--dir", str(copies), "--by", "tech",
                    "--data-dir", str(data))
    assert run.returncode == 75 and "another kiosk is running" in run.stderr


def test_restore_refuses_another_journal_and_a_damaged_copy(tmp_path: Path) -> None:
    data, copies = tmp_path / "data", tmp_path / "stick"
    Journal(data / "journal.sqlite3").close()
    other = Journal(tmp_path / "other" / "journal.sqlite3")
    sale(other, 1)
    made = backup.take(other.path, copies, "K0001")
    other.close()
    run = kiosk("journal", "restore", "--from", str(made.path), "--by", "tech",
                "--data-dir", str(data))
    assert run.returncode == 65 and "--other-journal" in run.stderr
    bad = copies / "K0001-0123456789abcdef-20260101T000000Z-000000009.sqlite3"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 8192)
    run = kiosk("journal", "restore", "--from", str(bad), "--by", "tech", "--data-dir",
                str(data))
    assert run.returncode == 65 and "not a readable journal" in run.stderr
    assert kiosk("journal", "check", "--data-dir", str(data)).returncode == 0
    run = kiosk("journal", "restore", "--from", str(made.path), "--by", "tech",
                "--other-journal", "--data-dir", str(data))
    assert run.returncode == 0, run.stderr
    assert identity.read_marker(data).journal_id == made.journal_id  # type: ignore[union-attr]


def config_with_backup(tmp_path: Path, copies: Path) -> Path:
    cfg = tmp_path / "kiosk.toml"
    # `base` names a file in the same folder: copy the shipped config beside this one.
    (tmp_path / "catalog.toml").write_text((ROOT / "config" / "catalog.toml").read_text())
    (tmp_path / "shipped.toml").write_text((ROOT / "config" / "kiosk.toml").read_text())
    cfg.write_text(f'base = "shipped.toml"\n\n[backup]\nfolder = "{copies}"\ninterval_min = 60\n')
    return cfg


def test_the_running_kiosk_copies_at_start_and_a_wiped_folder_refuses(tmp_path: Path) -> None:
    data, copies = tmp_path / "data", tmp_path / "stick"
    cfg = config_with_backup(tmp_path, copies)
    run = kiosk("--config", str(cfg), "run", "--headless", "--exit-when-settled",
                "--data-dir", str(data))
    assert run.returncode == 0, run.stderr
    [made] = backup.copies(copies, "K0001")
    assert made.journal_id == identity.read_marker(data).journal_id  # type: ignore[union-attr]
    # The whole data folder is lost (a new disk): the copies on the stick say this kiosk
    # had a journal, so it is not started as a new one.
    for p in sorted(data.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    run = kiosk("--config", str(cfg), "run", "--headless", "--exit-when-settled",
                "--data-dir", str(data))
    assert run.returncode == 65
    [line] = run.stderr.strip().splitlines()
    assert f"holds copies of kiosk K0001's journal (newest: {made.path.name})" in line
    restored = kiosk("--config", str(cfg), "journal", "restore", "--by", "tech",
                     "--data-dir", str(data))
    assert restored.returncode == 0, restored.stderr
    run = kiosk("--config", str(cfg), "run", "--headless", "--exit-when-settled",
                "--data-dir", str(data))
    assert run.returncode == 0, run.stderr


def test_every_z_report_leaves_a_copy(tmp_path: Path) -> None:
    data, copies = tmp_path / "data", tmp_path / "stick"
    cfg = config_with_backup(tmp_path, copies)
    j = Journal(data / "journal.sqlite3")
    sale(j, 1)
    j.close()
    z = kiosk("--config", str(cfg), "report", "z", "--by", "tech", "--data-dir", str(data))
    assert z.returncode == 0, z.stderr
    [made] = backup.copies(copies, "K0001")
    db = sqlite3.connect(made.path)
    assert db.execute("SELECT COUNT(*) FROM report_periods").fetchone()[0] == 1   # the Z
    db.close()
