"""Stopping the real processes tests start (edges, workers), the way a supervisor would."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, as ``docker stop`` sends; SIGKILL if it has not exited after `grace` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
