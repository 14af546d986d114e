"""A journal's identity, and the two things kept beside it that let a lost journal be noticed.

A journal is created once: by `kiosk journal init`, or by the first start on an empty data
folder. Its identity is written twice: in the journal (meta `journal_id`) and in a small
file beside it, `journal.id`. From then on a folder whose `journal.id` names a journal that
is missing or empty refuses to start, and says how to restore it: a 0-byte or deleted
journal is never taken for a new kiosk (its vouchers and history would be gone and its
references would start again at 000001, to be confused with old ones by the provider).

References carry a tag (meta `ref_tag`, four base-32 characters) drawn at creation and drawn
again at every restore, so a reference is never used twice for two different sales, even
after an older copy of the journal is put back.

`journal.seq` is the journal's high-water mark: the last sequence number this folder's
journal is known to have committed, written (without a sync: it may only lag) after each
write. A journal that opens with fewer events than that lost some (a damaged or deleted WAL
file, an older copy put in its place): it refuses to start instead of forgetting money.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import private

MARKER = "journal.id"
MARK = "journal.seq"
TAG_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"      # Crockford's base 32: no I, L, O, U
RESTORE_HINT = ("restore it from the second copy with `kiosk journal restore`"
                " (docs/operations.md)")


class JournalRefused(Exception):
    """The journal cannot be opened as it is; the message says why and what to do."""


@dataclass(frozen=True)
class Identity:
    journal_id: str
    kiosk_id: str
    created: float


def new_tag() -> str:
    return "".join(secrets.choice(TAG_ALPHABET) for _ in range(4))


def new_id() -> str:
    return secrets.token_hex(8)


def has_data(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- the marker file
def read_marker(folder: Path) -> Identity | None:
    p = folder / MARKER
    try:
        d = json.loads(p.read_text("utf-8"))
        return Identity(str(d["journal_id"]), str(d["kiosk_id"]), float(d["created"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise JournalRefused(f"{p}: not a journal identity ({exc}); it names the journal of"
                             " this folder: put the right one back or restore") from exc


def write_marker(folder: Path, ident: Identity) -> None:
    p = folder / MARKER
    tmp = p.with_name(p.name + ".tmp")
    data = json.dumps({"journal_id": ident.journal_id, "kiosk_id": ident.kiosk_id,
                       "created": ident.created}).encode()
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, private.FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def before_open(path: Path, *, create: bool) -> None:
    """Refuse to open (and so create) a journal that this folder had and lost."""
    if has_data(path):
        return
    marker = read_marker(path.parent)
    if marker is not None:
        what = "is empty" if path.exists() else "is missing"
        raise JournalRefused(
            f"{path} {what}, but this folder had journal {marker.journal_id} of kiosk"
            f" {marker.kiosk_id}: {RESTORE_HINT}. The kiosk does not start on an empty"
            " journal, which would lose its vouchers and reuse its references.")
    if not create:
        raise JournalRefused(f"{path}: no journal here (a kiosk creates it at its first"
                             " start, or `kiosk journal init`)")


# ---------------------------------------------------------------- identity in the journal
def establish(db: sqlite3.Connection, path: Path, kiosk_id: str) -> Identity:
    """Called inside the journal's first write transaction: read the journal's identity,
    or create it (a new journal, or one written before identities existed); check that it
    is the one this folder knows."""
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN"
                           " ('journal_id', 'journal_created', 'ref_tag')").fetchall())
    if "journal_id" not in meta:
        meta = {"journal_id": new_id(), "journal_created": repr(time.time()),
                "ref_tag": meta.get("ref_tag") or new_tag()}
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
    ident = Identity(meta["journal_id"], kiosk_id, float(meta["journal_created"]))
    marker = read_marker(path.parent)
    if marker is not None and marker.journal_id != ident.journal_id:
        raise JournalRefused(
            f"{path} is journal {ident.journal_id}, but this folder's journal is"
            f" {marker.journal_id} ({path.parent / MARKER}): a journal from elsewhere was put"
            f" here. Put the right one back, or {RESTORE_HINT}.")
    return ident


def ensure_marker(path: Path, ident: Identity) -> None:
    if read_marker(path.parent) is None:
        write_marker(path.parent, ident)


# ---------------------------------------------------------------- the high-water mark
_marks: dict[Path, int] = {}
_marks_lock = threading.Lock()


def read_mark(folder: Path) -> int:
    try:
        text = (folder / MARK).read_text("ascii").strip()
    except FileNotFoundError:
        return 0
    except UnicodeDecodeError:
        return 0
    return int(text) if text.isdigit() else 0


def check_mark(path: Path, last_seq: int) -> None:
    mark = read_mark(path.parent)
    if mark > last_seq:
        raise JournalRefused(
            f"{path} ends at event {last_seq}, but this folder's journal had written up to"
            f" event {mark} ({path.parent / MARK}): events {last_seq + 1}..{mark} are lost (a"
            f" damaged or deleted {path.name}-wal file, or an older copy put in its place)."
            f" Money facts may be among them: {RESTORE_HINT}, or keep the damaged files for"
            " the operator.")
    with _marks_lock:
        _marks[path.parent] = last_seq      # what this process knows of the folder now


def advance_mark(folder: Path, seq: int) -> None:
    """After a durable write: the folder's journal has reached `seq`. Never goes back."""
    with _marks_lock:
        if seq <= _marks.get(folder, 0):
            return
        _marks[folder] = seq
        p = folder / MARK
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, private.FILE_MODE)
        try:
            os.pwrite(fd, f"{seq:020d}\n".encode(), 0)
        finally:
            os.close(fd)


def reset_mark(folder: Path, seq: int) -> None:
    """After a restore: the restored journal is the folder's journal now."""
    with _marks_lock:
        _marks[folder] = seq
        p = folder / MARK
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(f"{seq:020d}\n", "ascii")
        os.chmod(tmp, private.FILE_MODE)
        os.replace(tmp, p)
