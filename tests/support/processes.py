"""Real processes for tests: stopping what they start (edges, workers) as a supervisor would, and
probing a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys


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


def python_with_a_library_changed(change: str, then: str) -> str:
    """Run `change` (as a library release that changed its internals would be), then `then`, in a
    fresh interpreter with logging to stdout; return its stdout, failing the test if it failed."""
    code = "import logging, sys\nlogging.basicConfig(stream=sys.stdout, format='%(levelname)s %(message)s')\n"
    done = subprocess.run(
        [sys.executable, "-c", f"{code}{change}\n{then}\n"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
