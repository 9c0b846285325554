"""What bounds each missed target, worked out from the run's own CPU and Redis accounting.

Plain arithmetic on what was measured, no guesses: a process that spends X µs of CPU per request
cannot answer more than 1e6 / X requests per second on its one core, and processes sharing the
machine's cores cannot together exceed cores x 1e6 / (sum of their µs per request).
"""

from __future__ import annotations

from bench.pipeline import PipelineRun, Throughput
from bench.report import (
    ACK_TO_HANDLER_P99_MS,
    EDGE_P99_MS,
    LOADED,
    PIPELINE_SCALING,
    Results,
    Target,
    targets,
)


def _cap(us: float) -> float:
    return 1e6 / us if us > 0 else float("inf")


def edge_bounds(results: Results) -> list[str]:
    relay = results.edge_run("relay", LOADED)
    if relay is None or not relay.wrk.requests:
        return []
    cores = results.machine.cores or 1
    server, redis, wrk = relay.server_us_per_request, relay.redis_us_per_request, relay.wrk_us_per_request
    lines = [
        f"- **Relay edge** at {LOADED} connections: the uvicorn process spent {server:.0f} µs of CPU per "
        f"request, so one process tops out near {_cap(server):,.0f} requests/s on its core; it ran at "
        f"{relay.wrk.rps:,.0f} ({relay.wrk.rps / _cap(server):.0%} of that). Redis added {redis:.0f} µs and "
        f"wrk {wrk:.0f} µs per request on the same {cores} cores "
        f"(together at most {cores * _cap(server + redis + wrk):,.0f}/s)."
    ]
    baseline = results.edge_run("baseline", LOADED)
    if baseline is not None and baseline.server_us_per_request:
        needed = baseline.server_us_per_request / 3
        lines.append(
            f"  The baseline spent {baseline.server_us_per_request:.0f} µs per request; 3x its throughput "
            f"needs the edge at or below about {needed:.0f} µs per request."
        )
    p99 = relay.wrk.p99_ms
    # Little's law for wrk's closed loop: N connections, each waiting for its answer before it sends
    # again, at X requests/s means a mean latency of N / X, whatever the server does.
    needed_rps = LOADED / EDGE_P99_MS * 1000
    text = (
        f"  Latency at {LOADED} connections: wrk keeps {LOADED} requests in flight, so the mean latency is "
        f"{LOADED} / throughput (Little's law): {1000 * LOADED / relay.wrk.rps:.1f} ms at {relay.wrk.rps:,.0f}/s; "
        f"measured p50 {relay.wrk.p50_ms:.1f} ms, p99 {p99:.1f} ms. A p99 of {EDGE_P99_MS:g} ms needs a mean "
        f"well under {EDGE_P99_MS:g} ms, so well over {needed_rps:,.0f} requests/s"
    )
    ceiling = results.edge_run("ceiling", LOADED)
    if ceiling is not None:
        text += (
            f"; the bare ceiling route, which does nothing, reached {ceiling.wrk.rps:,.0f}/s with a p99 of "
            f"{ceiling.wrk.p99_ms:.1f} ms on this machine"
        )
    lines.append(text + ".")
    if relay.edge_ms is not None:
        inside_p50, inside_p99 = relay.edge_ms
        lines.append(
            f"  Inside the edge (its request log, from the end of a request's head to its answer): p50 "
            f"{inside_p50:.1f} ms, p99 {inside_p99:.1f} ms. The rest of wrk's latency is spent before the "
            f"edge reads a request and after it writes the answer: in the sockets, while the edge's one "
            f"thread works through the other connections, and in wrk."
        )
    return lines


def _per_event(run: PipelineRun) -> dict[str, float]:
    t = run.throughput
    return {name: n / t.events for name, n in t.redis_calls.items()} if t.events else {}


def _rest_us(t: Throughput) -> float:
    """CPU per event of everything but the workers: the edge, Redis and wrk, on the same cores."""
    return t.us_per_event(t.edge_cpu_s) + t.us_per_event(t.redis_cpu_s) + t.us_per_event(t.wrk_cpu_s)


def pipeline_bounds(results: Results) -> list[str]:
    lines = []
    cores = results.machine.cores or 1
    one, two = results.workers(1), results.workers(2)
    for run in (one, two):
        if run is None or not run.throughput.events:
            continue
        t = run.throughput
        worker = t.us_per_event(t.workers_cpu_s)  # each process spends this on each event it handles
        edge, redis, wrk = (
            t.us_per_event(t.edge_cpu_s),
            t.us_per_event(t.redis_cpu_s),
            t.us_per_event(t.wrk_cpu_s),
        )
        total_calls = sum(_per_event(run).values())
        lines.append(
            f"- **{run.workers} worker(s)**: {worker:.0f} µs of worker CPU per event (so each worker process "
            f"tops out near {_cap(worker):,.0f} events/s), edge {edge:.0f} µs, Redis "
            f"{redis:.0f} µs ({total_calls:.1f} commands), wrk {wrk:.0f} µs per event; everything together at most "
            f"{cores * _cap(worker + edge + redis + wrk):,.0f} events/s on {cores} cores. Measured: {t.rate:,.0f}."
        )
        lat = run.latency
        if lat.percentile(99) > ACK_TO_HANDLER_P99_MS and t.rate > 0:
            lines.append(
                f"  Latency: paced at {lat.achieved_rate:,.0f} events/s, {lat.achieved_rate / t.rate:.0%} of the "
                f"throughput measured just before; a queue that busy waits: p50 {lat.percentile(50):.1f} ms, "
                f"p90 {lat.percentile(90):.1f} ms, p99 {lat.percentile(99):.1f} ms."
            )
    if one and two and one.throughput.events and two.throughput.events:
        lines.append(_scaling(one, two, cores))
    drained = _drain(results, cores)
    if drained:
        lines.append(drained)
    return lines


def _drain(results: Results, cores: int) -> str:
    """The drain diagnostic (`bench.drain`), when it ran: do the workers scale with the edge and wrk gone?"""
    one, two = results.drain(1), results.drain(2)
    if one is None or two is None or not one.rate:
        return ""
    worker, redis = one.us_per_event(one.workers_cpu_s), one.us_per_event(one.redis_cpu_s)
    rounds = len([d for d in results.drains if d.workers == 1])
    return (
        f"- Drain diagnostic (not a target: a backlog stored through the edge, then the edge and wrk stopped "
        f"and the workers started on it; median of {rounds} round(s)): 1 worker {one.rate:,.0f} events/s at "
        f"{worker:.0f} µs of worker CPU and {redis:.0f} µs of Redis CPU per event; 2 workers {two.rate:,.0f} "
        f"events/s, {two.rate / one.rate:.2f}x. With only the workers and Redis on the {cores} cores, a "
        f"never-idle worker would put the ceiling at {cores} x worker / (worker + Redis) = "
        f"{cores * worker / (worker + redis):.2f}x."
    )


def _scaling(one: PipelineRun, two: PipelineRun, cores: int) -> str:
    """Why 2 workers fall short of `PIPELINE_SCALING` x 1: the CPU that rate would need, against the run's."""
    a, b = _per_event(one), _per_event(two)
    grew = sorted(
        ((name, a.get(name, 0.0), n) for name, n in b.items() if n - a.get(name, 0.0) >= 0.2),
        key=lambda item: item[1] - item[2],
    )
    t1, t2 = one.throughput, two.throughput
    w1, w2 = t1.us_per_event(t1.workers_cpu_s), t2.us_per_event(t2.workers_cpu_s)
    whole = w1 + _rest_us(t1)
    best = cores * _cap(whole)
    wanted = PIPELINE_SCALING * t1.rate
    budget = cores * 1e6 / wanted
    text = (
        f"- Scaling: with 1 worker an event cost {whole:.0f} µs of CPU in all (worker, edge, Redis, wrk), so "
        f"even perfectly parallel workers could not pass {best:,.0f} events/s on {cores} cores, "
        f"{best / t1.rate:.2f}x the 1-worker rate, before any contention. "
        f"{PIPELINE_SCALING:g}x the 1-worker rate is {wanted:,.0f} events/s: on {cores} cores that leaves "
        f"{budget:.0f} µs of CPU per event for everything, with every core busy all the time; with 2 workers an "
        f"event cost {w2 + _rest_us(t2):.0f}. The 1 worker was busy {t1.rate * w1 / 1e6:.0%} of the time; "
        f"were it never idle, the ratio could not pass {cores} x worker / (worker + rest) = "
        f"{cores * w1 / whole:.2f} (rest: edge, Redis and wrk, {_rest_us(t1):.0f} µs per event), and "
        f"{PIPELINE_SCALING:g}x would need the rest at or below {(cores / PIPELINE_SCALING - 1) * w1:.0f} µs "
        f"beside this worker's {w1:.0f}. "
        f"From 1 to 2 workers, worker CPU per event went from {w1:.0f} to {w2:.0f} µs"
    )
    if grew:
        text += "; Redis commands per event that grew: " + ", ".join(
            f"{name} {before:.2f} → {after:.2f}" for name, before, after in grew
        )
    return text + "."


def bounds(results: Results) -> str:
    """Markdown bullets for the missed targets' bounds; empty when every target was met."""
    missed = [t for t in targets(results) if t.met is False]
    if not missed:
        return ""
    lines = []
    if any(_is_edge(t) for t in missed):
        lines += edge_bounds(results)
    if any(not _is_edge(t) for t in missed):
        lines += pipeline_bounds(results)
    return "\n".join(lines)


def _is_edge(target: Target) -> bool:
    return target.name.startswith("relay")
