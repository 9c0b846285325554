"""Where a server's time goes under load: py-spy samples it while wrk runs, and a short summary results.

Optional (``python -m bench --profile SECONDS``): py-spy is not a dependency of the relay. Install it
into the virtualenv with ``.venv/bin/pip install py-spy``. The profile run comes after the measured
ones, so the sampler's own CPU never weighs on a reported figure.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from bench.edge import RELAY, Server
from bench.load import Requests, run_wrk
from bench.processes import ProcessGroup, Redis, start_uvicorn
from bench.store import Store

PY_SPY_HINT = "bench: --profile needs py-spy; install it with: .venv/bin/pip install py-spy"


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit(PY_SPY_HINT)
    return found


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
    py_spy = _py_spy()
    process, port = start_uvicorn(group, f"profile-{server.name}", server.app, env)
    client = Store(store.url)
    output = group.directory / f"profile-{server.name}.txt"
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        client.flush()
        run_wrk(url, requests, connections=connections, seconds=1)  # warm-up, unsampled
        client.flush()
        duration = max(round(seconds), 1)
        args = [py_spy, "record", "--pid", str(process.pid), "--duration", str(duration), "--rate", "250",
                "--format", "raw", "--nonblocking", "--output", str(output)]  # fmt: skip
        sampler = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        result = run_wrk(url, requests, connections=connections, seconds=duration)
        _, errors = sampler.communicate(timeout=duration + 30)
        if sampler.returncode != 0:
            raise RuntimeError(f"py-spy failed: {errors.decode(errors='replace')}")
    finally:
        client.close()
        group.stop(process)
    heading = (
        f"py-spy ({duration} s at 250 Hz, non-blocking) on the {server.name} process while wrk ran "
        f"{connections} connections: {result.rps:,.0f} requests/s under the sampler."
    )
    return heading + "\n\n" + summarize(output.read_text())


def summarize(collapsed: str, top: int = 15) -> str:
    """Top functions by own samples and by inclusive samples, from py-spy's collapsed ("raw") stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return "(no samples)"
    lines = [f"{total} samples.", "", "| own % | function |", "|---|---|"]
    lines += [f"| {n / total:.1%} | `{name}` |" for name, n in own.most_common(top)]
    # Frames on (nearly) every stack are the event loop and uvicorn's start-up chain: not news.
    below_loop = [(name, n) for name, n in inclusive.most_common() if n < 0.95 * total][:top]
    lines += ["", "| inclusive % | function (those on < 95% of stacks) |", "|---|---|"]
    lines += [f"| {n / total:.1%} | `{name}` |" for name, n in below_loop]
    return "\n".join(lines)


def _function(frame: str) -> str:
    """``"handle (relay/webhook.py:42)"`` -> ``"handle (relay/webhook.py)"``: functions, not lines."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name
