"""Where a server's time goes under load: py-spy samples it while wrk runs, and a short summary results.

Optional (``python -m bench --profile SECONDS``: the relay edge, then one worker): py-spy is not a dependency of the relay. Install it
into the virtualenv with ``.venv/bin/pip install py-spy``. The profile run comes after the measured
ones, so the sampler's own CPU never weighs on a reported figure.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from itertools import takewhile
from pathlib import Path

from bench.edge import RELAY, Server
from bench.load import Requests, run_wrk
from bench.pipeline import warm_up
from bench.processes import ProcessGroup, Redis, start_uvicorn, start_worker
from bench.store import Store
from bench.traces import TRACE_DIR_ENV, Traces

PY_SPY_HINT = "bench: --profile needs py-spy; install it with: .venv/bin/pip install py-spy"


def _find_py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def py_spy_available() -> bool:
    return _find_py_spy() is not None


def _py_spy() -> str:
    found = _find_py_spy()
    if found is None:
        raise SystemExit(PY_SPY_HINT)
    return found


def _record(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    args = [_py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250",
            "--format", "raw", "--nonblocking", "--output", str(output)]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(sampler: subprocess.Popen[bytes], seconds: int) -> None:
    _, errors = sampler.communicate(timeout=seconds + 30)
    if sampler.returncode != 0:
        raise RuntimeError(f"py-spy failed: {errors.decode(errors='replace')}")


def profile_server(
    group: ProcessGroup,
    store: Redis,
    requests: Requests,
    *,
    seconds: float,
    connections: int = 50,
    server: Server = RELAY,
    env: Mapping[str, str] | None = None,
) -> str:
    """Sample `server` with py-spy during a wrk run at `connections`; return a Markdown summary."""
    _py_spy()
    duration = max(round(seconds), 1)
    process, port = start_uvicorn(group, f"profile-{server.name}", server.app, env)
    client = Store(store.url)
    output = group.directory / f"profile-{server.name}.txt"
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        client.flush()
        run_wrk(url, requests, connections=connections, seconds=1)  # warm-up, unsampled
        client.flush()
        sampler = _record(process.pid, duration, output)
        result = run_wrk(url, requests, connections=connections, seconds=duration)
        _finish(sampler, duration)
    finally:
        client.close()
        group.stop(process)
    heading = (
        f"py-spy ({duration} s at 250 Hz, non-blocking) on the {server.name} process while wrk ran "
        f"{connections} connections: {result.rps:,.0f} requests/s under the sampler."
    )
    return heading + "\n\n" + summarize(output.read_text())


def profile_worker(
    group: ProcessGroup,
    store: Redis,
    requests: Requests,
    secret: bytes,
    *,
    seconds: float,
    nonce: int,
    env: Mapping[str, str],
) -> str:
    """Sample one worker with py-spy while wrk feeds the edge (8 connections); return a summary."""
    _py_spy()
    duration = max(round(seconds), 1)
    client = Store(store.url)
    client.flush()
    traces = Traces(Path(env[TRACE_DIR_ENV]))
    traces.clear()
    edge, port = start_uvicorn(group, "profile-edge", RELAY.app, env)
    worker = start_worker(group, "profile-worker", env)
    output = group.directory / "profile-worker.txt"
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        warm_up(client, traces, url, secret, [worker], nonce)
        sampler = _record(worker.pid, duration, output)
        run_wrk(url, requests, connections=8, seconds=duration)
        _finish(sampler, duration)
        handled = traces.count()
    finally:
        client.close()
        group.stop(worker)
        group.stop(edge)
    heading = (
        f"py-spy ({duration} s at 250 Hz, non-blocking) on one worker process while wrk fed the edge "
        f"(8 connections): {handled / duration:,.0f} handlers/s under the sampler."
    )
    return heading + "\n\n" + summarize(output.read_text())


def summarize(collapsed: str, top: int = 15) -> str:
    """Top functions by own samples and by inclusive samples, from py-spy's collapsed stacks.

    The inclusive table leaves out the frames that every full stack starts with (the CLI down to the
    event loop's ``_run_once``): they are on nearly every sample and say nothing. py-spy cuts some
    coroutine stacks short; those count as they are.
    """
    stacks: list[tuple[list[str], int]] = []
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [_function(frame) for frame in stack.split(";") if frame]
        if frames and count_text.isdigit():
            stacks.append((frames, int(count_text)))
    total = sum(count for _, count in stacks)
    if total == 0:
        return "(no samples)"
    roots: Counter[str] = Counter()
    for frames, count in stacks:
        roots[frames[0]] += count
    main = roots.most_common(1)[0][0]
    prefix: list[str] | None = None
    for frames, _ in stacks:
        if frames[0] == main:
            prefix = frames if prefix is None else _common_prefix(prefix, frames)
    # Keep the last shared frame: it is where the loop hands work out, a fair "100%".
    boring = set((prefix or [])[:-1])
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for name in set(frames) - boring:
            inclusive[name] += count

    def table(title: str, counts: Counter[str]) -> list[str]:
        rows = [f"| {n / total:.1%} | `{name}` |" for name, n in counts.most_common(top)]
        return ["", f"| {title} | function |", "|---|---|", *rows]

    return "\n".join([f"{total} samples.", *table("own %", own), *table("inclusive %", inclusive)])


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    return [x for x, _ in takewhile(lambda pair: pair[0] == pair[1], zip(a, b, strict=False))]


def _function(frame: str) -> str:
    """``"handle (relay/edge/webhook.py:42)"`` -> ``"handle (relay/edge/webhook.py)"``: functions, not lines."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name
