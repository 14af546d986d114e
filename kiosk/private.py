"""The data folder and the files in it are the kiosk's alone.

The journal holds full phone numbers and voucher codes: the data folder is 0700 and every
file the kiosk keeps there is 0600, whatever the umask. SQLite gives the `-wal` and `-shm`
files the mode of the database file, so creating that one private is enough for the three.

Never open a descriptor on a database that exists: closing any descriptor of a file drops
every POSIX lock this process holds on it, the shared lock of a live SQLite connection
included; another process closing its connection then takes itself for the last one,
checkpoints and deletes the WAL under the running kiosk (sqlite.org/howtocorrupt.html 2.2).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("kiosk.private")

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def folder(path: Path) -> None:
    """Create `path` private, or make an existing one private if it is ours. A shared
    folder (not ours, or sticky like /tmp) is left as it is, with a warning."""
    path.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077 == 0:
        return
    if st.st_uid != os.geteuid() or st.st_mode & stat.S_ISVTX:
        log.warning("data folder %s is shared (mode %o): keep the journal in a folder of"
                    " its own", path, stat.S_IMODE(st.st_mode))
        return
    os.chmod(path, FOLDER_MODE)


def file(path: Path) -> None:
    """Create `path` empty and private if it does not exist; make it private if it does
    (by its name only: no descriptor is opened on an existing file)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:
        pass
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if stat.S_IMODE(p.stat().st_mode) != FILE_MODE:
                os.chmod(p, FILE_MODE)
        except FileNotFoundError:
            continue
