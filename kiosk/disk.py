"""Free space where the journal lives: no sale is started without room to journal it.

SQLite answers a write it cannot make for lack of space with "database or disk is full"
(SQLITE_FULL); the operating system with ENOSPC or EDQUOT. Both are "full" here.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

MB = 1024 * 1024


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `path` (the
    nearest folder that exists)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def is_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return "full" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def full_message(path: Path, exc: BaseException) -> str:
    try:
        free = f"{free_bytes(path) // MB} MB free"
    except OSError:
        free = "free space unknown"
    return (f"{path}: the disk is full ({exc}; {free}): free space on that disk (old logs,"
            " the kivy folder), then start the kiosk again. Nothing was lost: the journal"
            " is written before money is taken.")
