"""Session-wide test infrastructure.

The PC/SC tests and the UI tests share one private pcscd with a vpcd reader (see
tests/pcsc/rig.py). pcsc-lite reads PCSCLITE_CSOCK_NAME once, at the first PC/SC call of
the process, so it is set here, when pytest loads this file, and nowhere else; the socket
path stays the same for the whole session, across `pcscd_rig.restart()`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.pcsc.rig import PcscdRig

_RIG = PcscdRig()
os.environ["PCSCLITE_CSOCK_NAME"] = _RIG.sock


@pytest.fixture(scope="session")
def pcscd_rig() -> Iterator[PcscdRig]:
    """A running pcscd whose reader `pcscd_rig.reader_name` takes VpcdCard(port=rig.port)."""
    _RIG.start()
    try:
        yield _RIG
    finally:
        _RIG.stop()
        shutil.rmtree(_RIG.base, ignore_errors=True)
