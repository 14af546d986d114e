"""One kiosk per data folder.

Two kiosks on one journal would fight over the serial ports and resume the same open
transactions (two vouchers for one payment). A running kiosk holds an exclusive lock on
`<data folder>/kiosk.lock` (flock: the kernel drops it when the process dies, kill -9
included, so a crash never leaves a stale lock); a second one refuses at once.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from . import private

NAME = "kiosk.lock"


class KioskBusy(Exception):
    """Another kiosk (process or runtime) runs on this data folder."""


class FolderLock:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / NAME
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        private.folder(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, private.FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise KioskBusy(f"{self.path.parent}: another kiosk is running on this data folder"
                            f" (pid {holder}); stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)                 # closing the descriptor drops the lock

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()

    def probe(self) -> None:
        """Refuse now if the folder is taken (before a window opens), holding nothing."""
        self.acquire().release()
