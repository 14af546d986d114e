"""The ID-003 line from the host's side: one frame out, and back the answer that is its own.

The device answers every host frame except the host's ACK with exactly one frame, in order,
and numbers nothing; an answer is recognised by its code only (`fits`), and a status answers
every status request. So an answer that comes after the host gave up on its frame (the
device, or a USB-serial adapter, was slower than `reply_timeout_s`) would pass for the
answer to the next frame, and every later one would be a frame behind: a VEND VALID read
after its ACK, ACKed again; an ESCROW read after STACK, STACK sent again.

`Line` keeps, for every try it gave up on, the time until which its answer may still come
(`late_s` after it was sent: one more reply timeout than the host waited). Before the next
frame goes out those answers are taken off the line, waited for until that time at most
(`stale` counts them), and whatever else is waiting is dropped (`misfits`). An exchange that
is answered after a second try takes the answer as the first try's (answers keep their
order; if the first one was lost instead, the wait for the second one's is only time lost),
so the later tries' answers are still due. A lost answer therefore costs up to `late_s`
before the next frame, a late one is never misread; an answer later than `late_s` is taken
for line noise, and `fits` is then the only guard left. A driver stopping does not wait for
answers still due: the exchange raises PortGone("stopping") instead.

A retry is sent at once after a timeout: in the same exchange any answer that fits is good.
`retries` tries without an answer that fits raise NotAnswering. `frame_out` tells whether
the last exchange's frame was written at all (the port may be gone before it is).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..serialworker import NotAnswering, PortGone
from . import id003
from .id003 import ANSWERED_WITH_ACK, Command, Status

Io = Callable[[Callable[[], Any]], Any]     # SerialWorker._io: a pyserial call, PortGone


class Line:
    def __init__(self, io: Io, reply_timeout_s: float, retries: int,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self._io = io
        self._stopping = stopping           # the driver is stopping: no waiting for them
        self.reply_timeout_s = reply_timeout_s
        self.retries = retries
        self.serial: Any = None
        self.decoder = id003.Decoder()
        self._due: list[float] = []         # until when each answer still owed may come
        self.misfits = 0                    # frames that answered no frame of ours
        self.timeouts = 0                   # tries given up
        self.stale = 0                      # answers to tries given up, taken off the line
        self.frame_out = False              # the last exchange's frame was written

    @property
    def late_s(self) -> float:
        return 2 * self.reply_timeout_s

    def opened(self, serial: Any) -> None:
        """A port (re)opened. Answers still due stay due: the device may send them yet."""
        self.serial = serial
        self.decoder = id003.Decoder()

    def write(self, frame: bytes) -> None:
        self._io(lambda: self.serial.write(frame))

    def exchange(self, cmd: int, data: bytes = b"") -> id003.Frame:
        frame = id003.encode(cmd, data)
        self.frame_out = False
        self._drain()
        sent: list[float] = []
        for _attempt in range(self.retries):
            self.write(frame)
            self.frame_out = True
            sent.append(time.monotonic())
            deadline = sent[-1] + self.reply_timeout_s
            while time.monotonic() < deadline:
                for answer in self._read():
                    if fits(cmd, answer):
                        self._due += [at + self.late_s for at in sent[1:]]
                        return answer
                    self.misfits += 1
            self.timeouts += 1
        self._due += [at + self.late_s for at in sent]
        raise NotAnswering(f"no answer to 0x{cmd:02X} after {self.retries} tries")

    def _read(self) -> list[id003.Frame]:
        s = self.serial
        # read(n) waits for n bytes or the port's timeout: ask for what is there (at least 1)
        chunk = self._io(lambda: s.read(max(1, s.in_waiting)))
        return self.decoder.feed(chunk) if chunk else []

    def _drain(self) -> None:
        """Take the answers still due off the line, then anything else already waiting."""
        s = self.serial
        while self._due:
            if self._stopping():
                raise PortGone("stopping")
            now = time.monotonic()
            self._due = [until for until in self._due if until > now]   # the rest: lost
            for _frame in self._read() if self._due else ():
                if self._due:
                    del self._due[0]
                    self.stale += 1
                else:
                    self.misfits += 1
        waiting = self._io(lambda: s.in_waiting)
        if waiting:
            self.misfits += len(self.decoder.feed(self._io(lambda: s.read(waiting))))
        self.decoder.reset()                # a piece of a frame is not the next answer


def fits(cmd: int, answer: id003.Frame) -> bool:
    """Whether `answer` can be the device's answer to `cmd`."""
    if cmd == Command.STATUS_REQUEST:
        try:
            id003.parse_status(answer)
        except id003.ProtocolError:
            return False
        return True
    if answer.cmd == Status.INVALID_COMMAND:
        return True
    if cmd in ANSWERED_WITH_ACK:
        return answer.cmd == id003.ACK
    return answer.cmd == cmd               # settings are echoed, getters answered in kind
