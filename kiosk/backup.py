"""The journal's second copy: an online backup to another disk (or a USB stick).

SQLite's backup API copies a consistent snapshot while the kiosk goes on writing (the copy
only reads). The copy is written to a temporary name in the backup folder, synced, checked
(quick_check) and renamed, so a half-written copy is never taken for a backup. Names carry
the kiosk, the journal's identity, the time (UTC) and the last event, so the newest copy of
this journal is found without opening them all:

    K0001-3f2a9c0d11e4b7a2-20261207T193000Z-000118004.sqlite3

The `keep` newest copies of this journal are kept; older ones are deleted. Copies of other
journals in the same folder (another kiosk's stick) are never touched.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from . import private

log = logging.getLogger("kiosk.backup")

_NAME = re.compile(r"^(?P<kiosk>[A-Za-z0-9_.-]+?)-(?P<jid>[0-9a-f]{16})-(?P<when>\d{8}T\d{6}Z)"
                   r"-(?P<seq>\d{9,})\.sqlite3$")


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class Copy:
    path: Path
    kiosk_id: str
    journal_id: str
    when: str           # 20261207T193000Z
    last_seq: int


def parse(path: Path) -> Copy | None:
    m = _NAME.match(path.name)
    if m is None:
        return None
    return Copy(path, m["kiosk"], m["jid"], m["when"], int(m["seq"]))


def copies(folder: Path, kiosk_id: str | None = None,
           journal_id: str | None = None) -> list[Copy]:
    """The backups in `folder` (of one kiosk, of one journal), newest first."""
    try:
        found = [c for p in folder.iterdir() if (c := parse(p)) is not None]
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [c for c in found if (kiosk_id is None or c.kiosk_id == kiosk_id)
             and (journal_id is None or c.journal_id == journal_id)]
    return sorted(found, key=lambda c: (c.when, c.last_seq), reverse=True)


def read_only_uri(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_copy(path: Path) -> tuple[str, int]:
    """(journal id, last event) of a backup file, after SQLite's structure check."""
    try:
        db = sqlite3.connect(read_only_uri(path), uri=True)
        try:
            rows = [str(r[0]) for r in db.execute("PRAGMA quick_check")]
            if rows != ["ok"]:
                raise BackupError(f"{path}: damaged ({'; '.join(rows[:3])})")
            jid = db.execute("SELECT value FROM meta WHERE key = 'journal_id'").fetchone()
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a readable journal ({exc})") from exc
    if jid is None:
        raise BackupError(f"{path}: a journal without an identity")
    return str(jid[0]), int(seq)


def take(journal: Path, folder: Path, kiosk_id: str, keep: int = 48) -> Copy:
    """Copy the journal at `journal` into `folder` now; returns the new copy."""
    try:
        private.folder(folder)
    except OSError as exc:
        raise BackupError(f"backup folder {folder}: {exc.strerror or exc}") from exc
    tmp = folder / f".partial-{os.getpid()}-{time.monotonic_ns()}.sqlite3"
    try:
        src = sqlite3.connect(read_only_uri(journal), uri=True, timeout=10)
        try:
            dst = sqlite3.connect(str(tmp))
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")   # one self-contained file
            finally:
                dst.close()
        finally:
            src.close()
        os.chmod(tmp, private.FILE_MODE)
        _sync(tmp)
        jid, seq = check_copy(tmp)
        when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        final = folder / f"{kiosk_id}-{jid}-{when}-{seq:09d}.sqlite3"
        os.replace(tmp, final)
        _sync(folder)
    except (OSError, sqlite3.Error) as exc:
        raise BackupError(f"backup to {folder} failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    made = parse(final)
    assert made is not None
    for old in copies(folder, kiosk_id, jid)[keep:]:
        old.path.unlink(missing_ok=True)
    log.info("journal backed up to %s (event %d)", final, seq)
    return made


async def every(journal: Path, folder: Path, kiosk_id: str, interval_s: float,
                keep: int) -> None:
    """The running kiosk's schedule: a copy at start, then every `interval_s`. A copy that
    fails (the stick is out, its disk is full) is an ALERT line and tried again next time;
    the kiosk goes on selling (the journal itself is intact)."""
    import asyncio
    while True:
        try:
            await asyncio.to_thread(take, journal, folder, kiosk_id, keep)
        except BackupError as exc:
            log.error("ALERT journal backup failed: %s", exc)
        await asyncio.sleep(interval_s)
