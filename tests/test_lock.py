"""One kiosk per data folder: a second kiosk (process or runtime) refuses at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from kiosk import config
from kiosk.lock import FolderLock, KioskBusy
from kiosk.runtime import Runtime
from tests.test_runtime import make_devices

ROOT = Path(__file__).resolve().parent.parent
KIOSK = [sys.executable, "-m", "kiosk.cli"]


def test_a_second_runtime_on_the_same_folder_refuses(tmp_path: Path) -> None:
    s = replace(config.load(data_dir=tmp_path), backend_timeout_s=1)
    first = Runtime(s, devices=make_devices(s))
    with pytest.raises(KioskBusy, match="another kiosk is running on this data folder"):
        Runtime(s, devices=make_devices(s))
    assert f"{os.getpid()}" in (tmp_path / "kiosk.lock").read_text()
    first.lock.release()                        # what stop() does last
    second = Runtime(s, devices=make_devices(s))  # the folder is free again
    second.lock.release()
    other = replace(s, data_dir=tmp_path / "other")
    Runtime(other, devices=make_devices(other)).lock.release()   # another folder: fine


def test_a_second_kiosk_process_refuses_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "KIOSK_LOG_LEVEL": "WARNING"}
    first = subprocess.Popen([*KIOSK, "run", "--headless", "--data-dir", str(tmp_path)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        lock = tmp_path / "kiosk.lock"
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, "first kiosk"
            time.sleep(0.05)
        second = subprocess.run([*KIOSK, "run", "--headless", "--data-dir", str(tmp_path)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 75
        [line] = second.stderr.strip().splitlines()
        assert line == (f"kiosk: {tmp_path}: another kiosk is running on this data folder"
                        f" (pid {first.pid}); stop it first")
        assert first.poll() is None                     # the first one is untouched
    finally:
        first.send_signal(signal.SIGKILL)               # a crash drops the lock with it
        first.wait(30)
    FolderLock(tmp_path).probe()                        # free after kill -9
