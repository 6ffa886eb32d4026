"""`airgrid up` stops every child it started: one that ignores SIGTERM is killed after the
grace period, so Ctrl-C always ends the stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from airgrid.config import Settings
from entrypoints.stack import Stack

pytestmark = pytest.mark.integration

STUBBORN = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    stack = Stack(Settings(state_dir=tmp_path))
    child = subprocess.Popen(
        [sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    stack.children["stubborn"] = child
    stack.stop(grace_s=1.0)
    assert child.poll() is not None, "the child outlived the stop"
    assert child.returncode == -9, f"expected SIGKILL, got {child.returncode}"
