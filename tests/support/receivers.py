"""The example receivers of forwarded events (examples/forward_receiver.*), as commands to run."""

from __future__ import annotations

import shutil
import sys

import pytest

NODE = shutil.which("node")
COMMANDS = {
    "python": [sys.executable, "examples/forward_receiver.py"],
    "javascript": [NODE or "node", "examples/forward_receiver.js"],
}


def receiver_command(language: str) -> list[str]:
    """The command running `language`'s example; skips the test where node is not installed."""
    if language == "javascript" and NODE is None:
        pytest.skip("node is not installed: the JavaScript receiver is tested where it is")
    return COMMANDS[language]
