"""`kiosk journal restore`: put the journal back from its second copy.

Only with no kiosk running on the folder (its lock is taken for the whole restore). The
copy is checked first (SQLite's structure check, an identity, the same journal as this
folder's unless told otherwise). Whatever is in the folder now is moved aside, never
deleted, into `damaged-<time>/`. The copy is written in place through SQLite, then the
restore is journaled as the first event after the copy's last, with a new reference tag:
references made after the copy was taken were already sent to the provider, and the
restored journal must never make them again for another sale.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from . import backup, identity, private
from . import events as ev
from .lock import FolderLock


class RestoreError(Exception):
    pass


@dataclass(frozen=True)
class Restored:
    source: Path
    journal_id: str
    copy_last_seq: int
    lost_to: int            # the folder's high-water mark before (0: unknown)
    set_aside: Path | None
    new_tag: str


def _set_aside(journal: Path) -> Path | None:
    present = [p for p in (journal, Path(f"{journal}-wal"), Path(f"{journal}-shm"))
               if p.exists()]
    if not present:
        return None
    aside = journal.parent / time.strftime("damaged-%Y%m%dT%H%M%SZ", time.gmtime())
    n = 1
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{aside.name.split('.')[0]}.{n}")
    aside.mkdir(mode=private.FOLDER_MODE)
    for p in present:
        os.replace(p, aside / p.name)
    return aside


def restore(journal: Path, kiosk_id: str, currency: str, source: Path, by: str,
            other_journal: bool = False) -> Restored:
    folder = journal.parent
    with FolderLock(folder):
        try:
            jid, copy_seq = backup.check_copy(source)
        except backup.BackupError as exc:
            raise RestoreError(str(exc)) from exc
        marker = identity.read_marker(folder)
        if marker is not None and marker.journal_id != jid and not other_journal:
            raise RestoreError(
                f"{source} is a copy of journal {jid}, but this folder's journal is"
                f" {marker.journal_id}: choose a copy of {marker.journal_id}, or"
                " --other-journal to put this one in its place on purpose")
        lost_to = identity.read_mark(folder)
        tmp = folder / f".restoring-{os.getpid()}.sqlite3"
        try:
            src = sqlite3.connect(backup.read_only_uri(source), uri=True)
            try:
                dst = sqlite3.connect(str(tmp))
                try:
                    src.backup(dst)
                finally:
                    dst.close()
            finally:
                src.close()
            os.chmod(tmp, private.FILE_MODE)
            aside = _set_aside(journal)
            os.replace(tmp, journal)
        except (OSError, sqlite3.Error) as exc:
            raise RestoreError(f"restoring {journal} from {source}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        if marker is not None and marker.journal_id != jid:
            (folder / identity.MARKER).unlink()       # --other-journal: its identity now
        identity.reset_mark(folder, copy_seq)
        from .journal import Journal
        j = Journal(journal, kiosk_id, currency, create=False)
        try:
            new_tag = j.restart_references(ev.JournalRestored(
                source.name, copy_seq, lost_to, j.ref_tag, "", by))
        finally:
            j.close()
        return Restored(source, jid, copy_seq, lost_to, aside, new_tag)
