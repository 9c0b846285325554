"""Start-up checks: a tasks module's mistakes are one line each, and a worker with one takes no event."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from relay.core.keys import EVENTS_STREAM
from tests.conftest import SECRET
from tests.support.worker_process import WorkerProcess
from tests.worker.helpers import store_sync, vote_body
from worker import Registry
from worker.checks import TasksError, check_registry, import_tasks

HERE = Path(__file__).resolve()


def problems(register: Any) -> list[str]:
    registry = Registry()
    register(registry)
    return check_registry(registry)


def test_known_types_the_wildcard_and_opted_in_future_types_pass() -> None:
    def register(registry: Registry) -> None:
        @registry.on("VOTE_ADD", "REVIEW_ADD")
        async def known(ctx: Any, event: Any) -> None: ...

        @registry.on("*")
        async def everything(ctx: Any, event: Any) -> None: ...

        @registry.on("GUILD_BOOST", future=True)
        def boosts(ctx: Any, event: Any) -> None: ...

    assert problems(register) == []


def test_a_typo_in_an_event_name_names_the_handler_its_line_and_the_fix() -> None:
    def register(registry: Registry) -> None:
        @registry.on("VOTE_ADDED")
        async def reward(ctx: Any, event: Any) -> None: ...

    [line] = problems(register)
    assert line.startswith(f"tests/worker/test_checks.py:{reward_line(register)}: handler reward: ")
    assert "unknown event type 'VOTE_ADDED'" in line and "REVIEW_ADD, VOTE_ADD" in line
    assert "future=True" in line and "'*'" in line


def reward_line(register: Any) -> int:
    """The line of the ``@registry.on`` nested in `register`, where the handler starts (computed)."""
    source = Path(register.__code__.co_filename).read_text().splitlines()
    start = register.__code__.co_firstlineno
    return next(n for n in range(start, len(source) + 1) if "@registry.on" in source[n - 1])


@pytest.mark.parametrize(
    "source",
    [
        "async def h(event): ...",
        "async def h(ctx, event, extra): ...",
        "def h(): ...",
        "async def h(*, ctx, event): ...",
    ],
)
def test_a_signature_that_cannot_take_ctx_and_event_is_refused(source: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    registry = Registry()
    registry.on("VOTE_ADD")(namespace["h"])
    [line] = check_registry(registry)
    assert "handler h: its signature" in line and "cannot take (ctx, event)" in line


def test_signatures_that_can_take_ctx_and_event_pass() -> None:
    registry = Registry()

    @registry.on("VOTE_ADD")
    async def defaults(ctx: Any, event: Any, retries: int = 3) -> None: ...

    @registry.on("VOTE_ADD")
    async def variadic(*args: Any) -> None: ...

    assert check_registry(registry) == []


def test_generators_are_refused_and_every_problem_gets_its_own_line() -> None:
    registry = Registry()

    @registry.on("VOTE_ADDED")
    async def twice_wrong(event: Any) -> Any:
        yield event

    lines = check_registry(registry)
    assert len(lines) == 3
    assert all(": handler twice_wrong: " in line for line in lines)
    assert any("generator" in line for line in lines)


def test_a_stable_name_replaces_the_function_name_and_must_be_fit_for_job_ids() -> None:
    registry = Registry()

    @registry.on("VOTE_ADD", name="thank-voter.v1")
    async def renamed_many_times(ctx: Any, event: Any) -> None: ...

    assert [h.name for h in registry] == ["thank-voter.v1"]
    for bad in ["", "has space", "a:b", "-leading", "x" * 101]:
        with pytest.raises(ValueError, match="name must be"):
            registry.on("VOTE_ADD", name=bad)


# -- importing the tasks module ---------------------------------------------------------------


@pytest.fixture
def tasks_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("tasks_check_")]:
        del sys.modules[name]


def write_tasks(directory: Path, name: str, source: str) -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def test_a_syntax_error_is_one_line_with_file_and_line(tasks_dir: Path) -> None:
    path = write_tasks(
        tasks_dir,
        "tasks_check_syntax",
        "from worker import on\n\n@on('VOTE_ADD')\nasync def h(ctx, event)\n    pass\n",
    )
    with pytest.raises(TasksError) as raised:
        import_tasks("tasks_check_syntax")
    [line] = raised.value.lines
    assert line.startswith(f"{path}:4: RELAY_TASKS=tasks_check_syntax has a SyntaxError")


def test_an_error_raised_at_import_points_at_the_tasks_file(tasks_dir: Path) -> None:
    path = write_tasks(
        tasks_dir,
        "tasks_check_raises",
        """\
        from worker import on

        LIMIT = int("ten")
        """,
    )
    with pytest.raises(TasksError) as raised:
        import_tasks("tasks_check_raises")
    [line] = raised.value.lines
    assert line.startswith(f"{path}:3: cannot import RELAY_TASKS=tasks_check_raises: ValueError:")


def test_a_missing_module_and_a_missing_dependency_are_told_apart(tasks_dir: Path) -> None:
    with pytest.raises(TasksError, match="RELAY_TASKS=tasks_check_absent: no such module"):
        import_tasks("tasks_check_absent")
    path = write_tasks(tasks_dir, "tasks_check_dependency", "import no_such_dependency_xyz\n")
    with pytest.raises(TasksError) as raised:
        import_tasks("tasks_check_dependency")
    assert raised.value.lines[0].startswith(f"{path}:1: cannot import RELAY_TASKS=tasks_check_dependency")
    assert "no_such_dependency_xyz" in raised.value.lines[0]


# -- a real worker process ----------------------------------------------------------------------


def start_worker(directory: Path, redis_url: str, tasks: str) -> WorkerProcess:
    worker = WorkerProcess(directory, tasks, {"redis_url": redis_url, "secret": SECRET, "tasks": tasks})
    worker.env["PYTHONPATH"] = f"{directory}:{HERE.parents[2]}"
    return worker.start()


@pytest.mark.slow
def test_a_worker_with_broken_handlers_exits_before_taking_any_event(
    tmp_path: Path, redis_url: str, client: redis.Redis
) -> None:
    client.delete(EVENTS_STREAM)
    store_sync(client, vote_body())
    path = write_tasks(
        tmp_path,
        "tasks_check_broken",
        """\
        from worker import on

        @on("VOTE_ADDED")
        async def typo(ctx, event):
            pass

        @on("VOTE_ADD")
        async def one_parameter(event):
            pass
        """,
    )
    worker = start_worker(tmp_path, redis_url, "tasks_check_broken")
    assert worker.wait_exit(within=30) != 0
    lines = [line for line in worker.log().splitlines() if line.startswith("sphere-relay: ")]
    assert lines == [
        f"sphere-relay: {path}:3: handler typo: unknown event type 'VOTE_ADDED' (known: REVIEW_ADD, VOTE_ADD); "
        "fix the name, use '*' for every event, or @on('VOTE_ADDED', future=True) for a type Sphere does not send yet",
        f"sphere-relay: {path}:7: handler one_parameter: its signature (event) cannot take (ctx, event); "
        "define it as (ctx, event)",
    ]
    assert "Traceback" not in worker.log()
    assert client.xinfo_groups(EVENTS_STREAM) == []  # no bridge ever joined: the event waits, untouched


@pytest.mark.slow
def test_a_worker_with_a_syntax_error_prints_one_line(tmp_path: Path, redis_url: str) -> None:
    path = write_tasks(tmp_path, "tasks_check_worker_syntax", "from worker import on\nx = (\n")
    worker = start_worker(tmp_path, redis_url, "tasks_check_worker_syntax")
    assert worker.wait_exit(within=30) != 0
    assert worker.log().strip().splitlines()[-1].startswith(f"sphere-relay: {path}:2: ")
    assert "Traceback" not in worker.log()
