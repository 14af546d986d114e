"""Collecting the kiosk events a device driver posts from its own thread."""

from __future__ import annotations

import asyncio
import queue
import time
from typing import Any

from kiosk import events as ev


class EventQueue:
    """A thread-safe sink (`put`) and an async `expect` that waits for a matching event;
    every event taken off the queue is kept in `seen`, in order."""

    def __init__(self) -> None:
        self.q: queue.Queue[ev.Record] = queue.Queue()
        self.seen: list[ev.Record] = []

    def put(self, e: ev.Record) -> None:
        self.q.put(e)

    async def expect(self, kind: type, timeout: float = 6.0, **attrs: Any) -> Any:
        """The next event of that kind (and attributes); others are only kept in `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind.__name__}{attrs or ''} within {timeout} s; "
                                     f"saw {self.seen}")
            try:
                e = await asyncio.to_thread(self.q.get, True, min(left, 0.1))
            except queue.Empty:
                continue
            self.seen.append(e)
            if isinstance(e, kind) and all(getattr(e, k) == v for k, v in attrs.items()):
                return e

    def drain(self) -> list[ev.Record]:
        out = []
        while not self.q.empty():
            out.append(self.q.get_nowait())
        return out


async def until(cond: Any, what: str, timeout: float = 8.0) -> None:
    """Wait on the running loop until `cond()` is true; fail the test after `timeout` s."""
    import pytest
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
