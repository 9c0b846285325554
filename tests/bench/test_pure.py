"""The bench's pure parts: wrk's result line, the stream check, percentiles, targets, profile summary."""

from __future__ import annotations

import hmac
import io
import logging
from dataclasses import replace

import pytest

from bench.bounds import bounds, edge_bounds
from bench.drain import DrainRun
from bench.edge import EdgeRun, median_run, request_log_ms
from bench.handlers import IoRun, io_median
from bench.handlers import table as handlers_table
from bench.load import Signer, parse_wrk, review_body, signed_request
from bench.pipeline import Latency, PipelineRun, Throughput, percentile
from bench.profile import summarize
from bench.report import Machine, Results, kept_notes, render, targets
from relay.core.logs import JsonFormatter, RequestLog, TextFormatter

WRK_OUTPUT = """Running 6s test @ http://127.0.0.1:1234/webhook
  2 threads and 50 connections
BENCH_RESULT {"duration_us": 2000000, "requests": 1000, "bytes": 9, "errors": {"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 2}, "latency_us": {"p50": 1500, "p90": 2500, "p99": 4000, "max": 9000, "mean": 1600.0}, "sent": 1051, "repeated": 0}
"""


def test_parse_wrk_reads_the_result_line() -> None:
    result = parse_wrk(WRK_OUTPUT, 50)
    assert result.rps == 500
    assert (result.non_2xx, result.socket_errors, result.ok) == (3, 3, 997)
    assert (result.p50_ms, result.p99_ms) == (1.5, 4.0)
    # wrk calls request() once before the run to check it, and never sends that one.
    assert (result.sent, result.unanswered) == (1050, 50)


def test_parse_wrk_refuses_output_without_a_result() -> None:
    with pytest.raises(ValueError, match="BENCH_RESULT"):
        parse_wrk("Running 6s test\n", 50)


@pytest.mark.parametrize(
    ("entries", "match"),
    [(997, True), (1047, True), (996, False), (1048, False)],
)
def test_entries_may_exceed_2xx_only_by_the_unanswered(entries: int, match: bool) -> None:
    run = EdgeRun("relay", parse_wrk(WRK_OUTPUT, 50), entries, 1.0, 0.1)
    assert run.entries_match is match


def test_signed_requests_carry_a_valid_signature_and_unique_ids() -> None:
    secret = b"bench-secret"
    bodies = [review_body(number, 42) for number in range(3)]
    assert len(set(bodies)) == 3
    assert len({len(body) for body in bodies}) == 1
    request = signed_request(bodies[0], Signer(secret))
    head, body = request.split(b"\r\n\r\n", 1)
    assert body == bodies[0]
    expected = hmac.new(secret, body, "sha256").hexdigest().encode()
    assert b"X-Sphere-Signature: " + expected in head
    assert f"Content-Length: {len(body)}".encode() in head


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)
    assert percentile([7.0], 99) == 7.0


def _results(relay_rps: float, baseline_rps: float, one: float, two: float, p99_ms: float) -> Results:
    def edge(server: str, rps: float) -> EdgeRun:
        line = WRK_OUTPUT.replace('"requests": 1000', f'"requests": {int(rps * 2)}')
        line = line.replace('"status": 3', '"status": 0').replace('"read": 1', '"read": 0')
        line = line.replace('"timeout": 2', '"timeout": 0')
        wrk = parse_wrk(line, 50)
        return EdgeRun(server, wrk, wrk.ok, 1.0, 0.1)

    def pipe(workers: int, rate: float) -> PipelineRun:
        latencies = tuple([5.0] * 98 + [p99_ms, p99_ms])
        return PipelineRun(
            workers,
            Throughput(int(rate * 10), 10.0, "", 1.0, 1.0, 1.0, {}),
            Latency(200, 200, 100, 100, 100, latencies),
        )

    machine = Machine("today", "cpu", 2, "3.11", 10.0, "7", "wrk", {}, "0", "0")
    results = Results(machine, "python -m bench")
    results.edge = [edge("baseline", baseline_rps), edge("relay", relay_rps)]
    results.pipeline = [pipe(1, one), pipe(2, two)]
    return results


def test_targets_met() -> None:
    judged = targets(_results(relay_rps=3000, baseline_rps=1000, one=1000, two=1600, p99_ms=100))
    assert all(t.met for t in judged), judged


def test_targets_missed() -> None:
    judged = targets(_results(relay_rps=2999, baseline_rps=1000, one=999, two=1500, p99_ms=101))
    missed = {t.name for t in judged if t.met is False}
    assert missed == {
        "relay >= 3x baseline throughput, 50 connections",
        "pipeline, 1 worker >= 1,000 events/s",
        "pipeline, 2 workers >= 1.6x 1 worker",
        "ack-to-handler p99 <= 100 ms at 200/s, 1 worker(s)",
        "ack-to-handler p99 <= 100 ms at 200/s, 2 worker(s)",
    }


def test_profile_summary_counts_own_and_inclusive_samples() -> None:
    collapsed = (
        "main (cli.py:1);loop (asyncio.py:2);handle (relay/app.py:3) 6\n"
        "main (cli.py:1);loop (asyncio.py:9);write (uvicorn/h.py:4) 4\n"
    )
    text = summarize(collapsed)
    assert text.startswith("10 samples.")
    assert "| 60.0% | `handle (relay/app.py)` |" in text
    assert "| 100.0% | `loop (asyncio.py)` |" in text  # where the loop hands work out
    assert "`main (cli.py)`" not in text.split("inclusive")[1]  # on every stack: left out


def test_bounds_explain_only_missed_targets() -> None:
    met = _results(relay_rps=3000, baseline_rps=1000, one=1000, two=1600, p99_ms=100)
    assert bounds(met) == ""
    missed = bounds(_results(relay_rps=2999, baseline_rps=1000, one=999, two=1500, p99_ms=101))
    assert "Little's law" in missed
    assert "1 worker(s)" in missed
    assert "Latency: paced at 200 events/s" in missed


def method_of_ones() -> dict[str, object]:
    """The run parameters `render` fills its method text with, all 1."""
    keys = ["threads", "per_thread", "warmup", "seconds", "rounds", "pipe_conns", "pipe_seconds", "rate"]
    return dict.fromkeys([*keys, "lat_seconds"], 1)


def test_hand_written_notes_survive_a_rewrite() -> None:
    results = _results(relay_rps=3000, baseline_rps=1000, one=1000, two=1600, p99_ms=100)
    results.method = method_of_ones()
    assert kept_notes(render(results)) == ""
    results.notes = "## Notes\n\nThe edge is bound by its log line."
    assert kept_notes(render(results)) == results.notes


def test_rounds_stand_by_their_median_and_every_round_must_store_what_it_answered() -> None:
    def run(server: str, rps: float, round_number: int, *, entries_off: int = 0) -> EdgeRun:
        line = WRK_OUTPUT.replace('"requests": 1000', f'"requests": {int(rps * 2)}')
        line = line.replace('"status": 3', '"status": 0').replace('"read": 1', '"read": 0')
        wrk = parse_wrk(line.replace('"timeout": 2', '"timeout": 0'), 50)
        return EdgeRun(server, wrk, wrk.ok + entries_off, 1.0, 0.1, round_number)

    results = _results(relay_rps=3000, baseline_rps=1000, one=1000, two=1600, p99_ms=10)
    results.edge = [
        run("baseline", 1000, 1), run("relay", 3300, 1),
        run("baseline", 1200, 2), run("relay", 2900, 2),
        run("baseline", 900, 3), run("relay", 3100, 3),
    ]  # fmt: skip
    assert median_run(results.edge_runs("relay", 50)) is results.edge[5]
    assert [r.wrk.rps for r in results.edge_medians()] == [1000, 3100]
    ratio_target = next(t for t in targets(results) if t.name.startswith("relay >= 3x"))
    assert (ratio_target.measured, ratio_target.met) == ("3.10x", True)  # medians: 3100 / 1000
    results.method = method_of_ones()
    assert "by round: 3,300 req/s" in render(results)

    results.edge[3] = run("relay", 2900, 2, entries_off=-1)  # one round lost an entry
    stored = next(t for t in targets(results) if t.name.startswith("relay: every 2xx"))
    assert stored.met is False


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter])
def test_the_relays_request_log_times_are_read_back_in_either_format(
    formatter: type[logging.Formatter],
) -> None:
    logger = logging.Logger("relay.edge.webhook")  # not registered: no other handler reaches it
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter())
    logger.addHandler(handler)
    request_log = RequestLog(logger)
    request_log.start()
    request_log.write("queued", 202, 300, "REVIEW_ADD", b"1-0", 0.00463)
    request_log.write("invalid_signature", 401, 12, None, None, 0.0125)
    request_log.stop()
    logger.info("webhook ready", extra={"ms": 99})  # another line of the same logger: not a request
    logged = b"uvicorn's own line ms=5\n" + stream.getvalue().encode()

    assert request_log_ms(logged) == [4.63, 12.5]


def test_the_edges_own_latency_is_told_beside_wrks() -> None:
    results = _results(relay_rps=3000, baseline_rps=1000, one=1000, two=1600, p99_ms=100)
    relay = results.edge_run("relay", 50)
    assert relay is not None
    results.edge = [run if run is not relay else replace(run, edge_ms=(2.5, 7.25)) for run in results.edge]
    assert "Inside the edge" not in "\n".join(edge_bounds(_results(3000, 1000, 1000, 1600, 100)))
    assert (
        "Inside the edge (its request log, from the end of a request's head to its answer): p50 2.5 ms, p99 7.2 ms"
        in ("\n".join(edge_bounds(results)))
    )


def test_the_scaling_bound_counts_every_process_on_the_cores() -> None:
    def pipe(workers: int, events: int, worker_s: float, rest_s: float) -> PipelineRun:
        # rest_s split between the edge, Redis and wrk, as the bench measures them
        cpu = Throughput(events, 10.0, "", rest_s / 2, worker_s, rest_s / 4, {}, rest_s / 4)
        return PipelineRun(workers, cpu, Latency(200, 200, 100, 100, 100, (5.0,) * 100))

    results = _results(relay_rps=3000, baseline_rps=1000, one=1000, two=1600, p99_ms=5)
    results.pipeline = [pipe(1, 10_000, 8.0, 2.0), pipe(2, 12_000, 9.6, 2.4)]
    text = bounds(results)  # 1.2x: missed
    assert "1 worker an event cost 1000 µs of CPU in all" in text
    assert "1.6x the 1-worker rate is 1,600 events/s" in text
    assert "leaves 1250 µs of CPU per event for everything" in text
    assert "with 2 workers an event cost 1000" in text
    assert "The 1 worker was busy 80% of the time" in text
    assert "could not pass 2 x worker / (worker + rest) = 1.60 (rest: edge, Redis and wrk, 200 µs" in text
    assert "the rest at or below 200 µs beside this worker's 800" in text


def test_each_worker_count_stands_by_its_median_round_and_every_round_must_handle_everything() -> None:
    def pipe(workers: int, rate: float, round_number: int, handled: int = 100) -> PipelineRun:
        cpu = Throughput(int(rate * 10), 10.0, "", 1.0, 1.0, 1.0, {})
        return PipelineRun(workers, cpu, Latency(200, 200, 100, 100, handled, (5.0,) * 100), round_number)

    results = _results(relay_rps=3000, baseline_rps=1000, one=1000, two=1600, p99_ms=5)
    results.pipeline = [
        pipe(1, 1000, 1), pipe(2, 1500, 1, handled=99),
        pipe(1, 1300, 2), pipe(2, 2100, 2),
        pipe(1, 1100, 3), pipe(2, 1800, 3),
    ]  # fmt: skip
    one, two = results.workers(1), results.workers(2)
    assert (one and one.round, two and two.round) == (3, 3)  # medians: 1,100 and 1,800 events/s
    judged = {t.name: t for t in targets(results)}
    assert judged["pipeline, 2 workers >= 1.6x 1 worker"].measured == "1.64x"  # 1,800 / 1,100
    assert judged["ack-to-handler p99 <= 100 ms at 200/s, 1 worker(s)"].met is True
    assert (
        judged["ack-to-handler p99 <= 100 ms at 200/s, 2 worker(s)"].met is False
    )  # round 1, not the median, lost one
    results.method = method_of_ones()
    text = render(results)
    assert "- 2 worker(s), by round: 1,500 events/s" in text
    assert text.count("### pipeline, 2 worker(s), round ") == 3


def test_the_drain_diagnostic_is_told_beside_the_scaling_bound() -> None:
    results = _results(relay_rps=3000, baseline_rps=1000, one=1000, two=1200, p99_ms=5)  # 1.2x: missed
    assert "Drain diagnostic" not in bounds(results)  # not run: nothing to tell
    results.drains = [
        DrainRun(1, 40_000, 30_000, 10.0, 7.5, 2.5, 1),  # 3,000/s; 250 µs worker, 83 µs Redis per event
        DrainRun(2, 40_000, 30_000, 7.5, 8.1, 2.7, 1),  # 4,000/s
        DrainRun(1, 40_000, 20_000, 10.0, 5.0, 1.6, 2),  # 2,000/s: below the median
        DrainRun(2, 40_000, 20_000, 10.0, 5.0, 1.6, 2),
        DrainRun(1, 40_000, 40_000, 10.0, 9.0, 3.0, 3),  # 4,000/s: above it
        DrainRun(2, 40_000, 50_000, 10.0, 9.0, 3.0, 3),
    ]
    text = bounds(results)
    assert "1 worker 3,000 events/s at 250 µs of worker CPU and 83 µs of Redis CPU per event" in text
    assert "2 workers 4,000 events/s, 1.33x" in text
    assert "(worker + Redis) = 1.50x" in text


def test_each_io_bound_worker_count_stands_by_its_median_round() -> None:
    def run(workers: int, seconds: float, round: int) -> IoRun:
        return IoRun(workers, 5, 500 * workers, 500 * workers, 500 * workers, seconds, 1.0, round)

    runs = [run(1, 6.0, 1), run(4, 8.0, 1), run(1, 5.0, 2), run(4, 6.4, 2), run(1, 7.0, 3), run(4, 6.0, 3)]
    assert io_median(runs, 1) == runs[0] and io_median(runs, 4) == runs[3]
    markdown = handlers_table(None, runs)
    assert "| 4 | 5 | 2000 | 312 | 3.75x |" in markdown  # 2000 in 6.4 s against 500 in 6 s
    assert "- 4 worker(s), by round: 250 events/s at 500 µs, 312 events/s at 500 µs, 333 events/s" in markdown
