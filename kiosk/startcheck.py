"""What `kiosk run` checks before any window opens or device starts.

- the journal is this folder's, nothing it wrote is lost, and SQLite finds it sound
  (kiosk/identity.py; integrity_check: about 0.2 s on a 30 MB journal of 10,000 sales);
- an empty data folder is a new kiosk only if the backup folder holds no copy of this
  kiosk's journal (a folder wiped with its `journal.id` is still noticed);
- the disk is not full: a journal that cannot be written refuses here with the free space.

Each refusal is one line (JournalRefused), and `kiosk run` exits 65.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import backup, identity
from .journal import Journal


def preflight(settings: Any) -> None:
    path: Path = settings.journal_path
    folder: Path | None = settings.backup.folder
    if folder is not None and not identity.has_data(path) \
            and identity.read_marker(path.parent) is None:
        found = backup.copies(folder, settings.kiosk_id)
        if found:
            raise identity.JournalRefused(
                f"{path.parent} has no journal, but {folder} holds copies of kiosk"
                f" {settings.kiosk_id}'s journal (newest: {found[0].path.name}):"
                f" {identity.RESTORE_HINT}. To start this kiosk anew on purpose, use"
                " another kiosk id or move those copies away.")
    j = Journal(path, settings.kiosk_id, settings.currency)
    try:
        problems = j.check_structure()
    finally:
        j.close()
    if problems:
        raise identity.JournalRefused(
            f"{path} is damaged ({'; '.join(problems[:3])}): {identity.RESTORE_HINT}")

