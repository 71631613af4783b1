"""Stopping the processes tests start in their own process group (a worker, ``lapse ssf``)."""

from __future__ import annotations

import os
import signal
import subprocess


def kill9(proc: subprocess.Popen | None) -> None:
    """``kill -9`` the process group: a crash, as a test wants it."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def stop(proc: subprocess.Popen | None, grace_s: float = 30.0) -> None:
    """SIGTERM the process group, then SIGKILL after ``grace_s``."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
