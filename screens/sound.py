"""A short two-tone chime for timed prompts ("Need more time?"), so that a customer who
is not looking at the screen hears that it is about to close. Played with the same
player as speech (aplay), never waiting for it; a kiosk without sound logs it once."""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import tempfile
import wave
from pathlib import Path

log = logging.getLogger("kiosk.ui")

RATE = 16000
PLAYER = ("aplay", "-q")
played: list[Path] = []           # what was played (diagnostics and tests)
_state: dict[str, object] = {"file": None, "warned": False}
_tasks: set[asyncio.Task[None]] = set()


def chime_file() -> Path:
    """A 0.5 s chime (880 Hz then 660 Hz, faded), written once."""
    made = _state["file"]
    if not isinstance(made, Path) or not made.exists():
        frames = bytearray()
        for freq, dur in ((880, 0.22), (660, 0.28)):
            n = int(RATE * dur)
            for i in range(n):
                fade = min(1.0, i / 400, (n - i) / 400)
                frames += struct.pack("<h", int(9000 * fade * math.sin(
                    2 * math.pi * freq * i / RATE)))
        fd, name = tempfile.mkstemp(prefix="kiosk-chime-", suffix=".wav")
        with open(fd, "wb") as fh, wave.open(fh, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(bytes(frames))
        made = Path(name)
        _state["file"] = made
    return made


def beep() -> None:
    """Play the chime now (returns at once)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    path = chime_file()
    played.append(path)
    del played[:-20]
    task = loop.create_task(_play(path))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def _warn(text: object) -> None:
    if not _state["warned"]:
        _state["warned"] = True
        log.warning("the chime could not be played: %s", text)


async def _play(path: Path) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *PLAYER, str(path), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode:
            _warn(err.decode(errors="replace").strip()[:200] or proc.returncode)
    except OSError as exc:
        _warn(exc)
