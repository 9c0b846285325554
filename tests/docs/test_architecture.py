"""docs/ARCHITECTURE.md stays true and short: every file, ``file:function`` and test it names exists,
every page it links to exists, and it is at most 200 lines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 200

# A backticked repository path, optionally followed by ``:qualified.name`` or ``::test_name``.
_NAMED = re.compile(r"`([\w./-]+(?:\.(?:py|md|toml|yml|txt)|/))(?:(::?)([\w.]+))?`")
_LINK = re.compile(r"\]\(([\w./-]+\.md)(?:#[\w-]*)?\)")


def _defines(tree: ast.Module, qualname: str) -> bool:
    """Whether `qualname` (``Class.method``, ``function.inner``, ``CONSTANT``) is defined in `tree`."""
    scope: list[ast.stmt] = tree.body
    for part in qualname.split("."):
        found = None
        for node in scope:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == part:
                found = node
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    found = node
        if found is None:
            return False
        scope = getattr(found, "body", [])
    return True


def missing(text: str, root: Path = ROOT, here: Path = PAGE.parent) -> list[str]:
    """What `text` names that does not exist under `root` (links are relative to `here`)."""
    absent = []
    for path, separator, name in _NAMED.findall(text):
        file = root / path
        if not file.exists():
            absent.append(path)
        elif name and not _defines(ast.parse(file.read_text()), name):
            absent.append(f"{path}{separator}{name}")
    absent += [link for link in _LINK.findall(text) if not (here / link).exists()]
    return absent


def test_everything_the_page_names_exists() -> None:
    text = PAGE.read_text()
    assert len(_NAMED.findall(text)) >= 40, "the page names the files and functions of the event's path"
    assert missing(text) == []


def test_the_page_fits_in_200_lines() -> None:
    assert len(PAGE.read_text().splitlines()) <= MAX_LINES


def test_a_moved_name_is_caught() -> None:
    text = (
        "`worker/enqueue.py:handler_job_id` `worker/enqueue.py:JobSpec.for_event` `relay/core/` "
        "`worker/enqueue.py:JobSpec.gone` `worker/gone.py` `worker/enqueue.py:gone` "
        "`tests/worker/test_bridge.py::test_gone` [x](gone.md) [y](handlers.md)"
    )
    assert missing(text) == [
        "worker/enqueue.py:JobSpec.gone",
        "worker/gone.py",
        "worker/enqueue.py:gone",
        "tests/worker/test_bridge.py::test_gone",
        "gone.md",
    ]
