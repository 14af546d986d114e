"""`kiosk journal init | check | backup | restore`: the journal's identity and second copy.

Exit codes: 0 done; 65 the journal (or the copy) is refused, the message says why and what
to do; 66 no copy to restore from; 75 a kiosk runs on the folder (stop it first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import backup, identity
from .lock import KioskBusy

EX_REFUSED, EX_NO_COPY, EX_BUSY = 65, 66, 75


def _settings(args: argparse.Namespace) -> Any:
    from .config import load
    return load(args.config, data_dir=getattr(args, "data_dir", None))


def _backup_dir(args: argparse.Namespace, s: Any) -> Path | None:
    given = getattr(args, "dir", None)
    if given:
        return Path(given)
    folder: Path | None = s.backup.folder
    return folder


def _fail(text: str, code: int) -> int:
    print(f"kiosk: {text}", file=sys.stderr)
    return code


def cmd_init(args: argparse.Namespace) -> int:
    s = _settings(args)
    path = s.journal_path
    marker = identity.read_marker(path.parent)
    if identity.has_data(path) or marker is not None:
        what = marker.journal_id if marker else "a journal"
        return _fail(f"{path.parent} already has journal {what}: nothing to create"
                     f" (a lost one is put back with `kiosk journal restore`)", EX_REFUSED)
    from .journal import Journal
    j = Journal(path, s.kiosk_id, s.currency)
    print(f"journal {j.identity.journal_id} created for kiosk {s.kiosk_id} in {path}")
    j.close()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    s = _settings(args)
    from .journal import Journal
    try:
        j = Journal(s.journal_path, s.kiosk_id, s.currency, create=False)
    except identity.JournalRefused as exc:
        return _fail(str(exc), EX_REFUSED)
    try:
        problems = j.check_structure()
        if problems:
            return _fail(f"{s.journal_path} is damaged ({'; '.join(problems[:3])}):"
                         f" {identity.RESTORE_HINT}", EX_REFUSED)
        n = j.db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0]
        print(f"journal {j.identity.journal_id} of kiosk {s.kiosk_id}: sound;"
              f" {n} transactions, last event {j._last_seq}, references {s.kiosk_id}-"
              f"{j.ref_tag}-NNNNNN")
    finally:
        j.close()
    folder = _backup_dir(args, s)
    if folder is not None:
        found = backup.copies(folder, s.kiosk_id, j.identity.journal_id)
        print(f"second copy: {found[0].path} (event {found[0].last_seq})" if found
              else f"second copy: none yet in {folder}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    s = _settings(args)
    folder = _backup_dir(args, s)
    if folder is None:
        return _fail("no backup folder: set [backup] folder in the configuration or give"
                     " --to", 64)
    if not identity.has_data(s.journal_path):
        return _fail(f"{s.journal_path}: no journal to back up", EX_REFUSED)
    try:
        made = backup.take(s.journal_path, folder, s.kiosk_id,
                           s.backup.keep)
    except backup.BackupError as exc:
        return _fail(str(exc), 74)
    print(f"{made.path} (journal {made.journal_id}, event {made.last_seq})")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    s = _settings(args)
    from .restore import RestoreError, restore
    if args.source:
        source = Path(args.source)
    else:
        folder = _backup_dir(args, s)
        if folder is None:
            return _fail("no backup folder: give the copy with --from FILE, or set [backup]"
                         " folder in the configuration", EX_NO_COPY)
        marker = identity.read_marker(s.journal_path.parent)
        found = backup.copies(folder, s.kiosk_id, marker.journal_id if marker else None)
        if not found:
            return _fail(f"no copy of this kiosk's journal in {folder}", EX_NO_COPY)
        source = found[0].path
    try:
        done = restore(s.journal_path, s.kiosk_id, s.currency, source, args.by,
                       other_journal=args.other_journal)
    except KioskBusy as exc:
        return _fail(str(exc), EX_BUSY)
    except (RestoreError, identity.JournalRefused) as exc:
        return _fail(str(exc), EX_REFUSED)
    print(f"journal {done.journal_id} restored from {done.source} (up to event"
          f" {done.copy_last_seq})")
    if done.lost_to > done.copy_last_seq:
        print(f"events {done.copy_last_seq + 1}..{done.lost_to} written after that copy are"
              " not in it: check the transactions of that time with the provider"
              " (docs/operations.md)")
    if done.set_aside is not None:
        print(f"the files it replaced are kept in {done.set_aside}")
    print(f"new references: {s.kiosk_id}-{done.new_tag}-NNNNNN")
    return 0


def register(jsub: Any, common: argparse.ArgumentParser | None = None) -> None:
    """Add init, check, backup and restore to `kiosk journal`."""
    parents = [common] if common is not None else []
    ji = jsub.add_parser("init", parents=parents,
                         help="create this folder's journal and its identity")
    ji.set_defaults(func=cmd_init)
    jc = jsub.add_parser("check", parents=parents,
                         help="check the journal: identity, no lost events, structure")
    jc.add_argument("--dir", help="the backup folder to look in (default: the configured)")
    jc.set_defaults(func=cmd_check)
    jb = jsub.add_parser("backup", parents=parents, help="copy the journal to the backup"
                         " folder now (safe while the kiosk runs)")
    jb.add_argument("--to", dest="dir", help="backup folder (default: the configured)")
    jb.set_defaults(func=cmd_backup)
    jr = jsub.add_parser("restore", parents=parents, help="put the journal back from a copy"
                         " (the kiosk must be stopped)")
    jr.add_argument("--from", dest="source", help="the copy (default: the newest of this"
                    " journal in the backup folder)")
    jr.add_argument("--dir", help="the backup folder (default: the configured)")
    jr.add_argument("--by", required=True, help="who restores (journaled)")
    jr.add_argument("--other-journal", action="store_true",
                    help="accept a copy of another journal than this folder's")
    jr.set_defaults(func=cmd_restore)
