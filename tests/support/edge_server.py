"""A real uvicorn serving the edge on a free loopback port, in a background thread.

Real HTTP matters for the edge: chunked bodies, Content-Length checks and early answers behave as
they do in production only through a real server. Usage::

    with running_edge(settings) as base_url:
        httpx.post(f"{base_url}/webhook", ...)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from relay.app import create_app
from relay.core.settings import Settings
from relay.edge.protocol import EdgeHttpProtocol
from tests.support.redis_server import free_port


@contextmanager
def running_edge(
    settings: Settings, *, start_timeout: float = 10.0, http: Any = EdgeHttpProtocol, **options: Any
) -> Iterator[str]:
    """Serve `create_app(settings)` with uvicorn (the edge's protocol, lifespan on); yield its base URL.

    `http` is the HTTP protocol (``"httptools"``: uvicorn's own, without the edge's head bounds);
    `options` are more `uvicorn.Config` options, such as ``limit_concurrency``.
    """
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        http=http,  # by default what production runs: httptools with bounded request heads
        proxy_headers=False,  # as in production: RELAY_TRUSTED_PROXIES alone decides whom to believe
        ws="none",
        lifespan="on",
        access_log=False,
        log_config=None,  # leave logging to pytest (caplog sees the edge's lines)
        timeout_graceful_shutdown=5,
        **options,
    )
    with serving(config, name="edge", start_timeout=start_timeout) as base_url:
        yield base_url


@contextmanager
def serving(config: uvicorn.Config, *, name: str, start_timeout: float = 10.0) -> Iterator[str]:
    """Run `config`'s uvicorn server in a background thread until the block ends; yield its base URL."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"{name}-{config.port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the {name} stopped during start-up")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the {name} did not start within {start_timeout}s")
        time.sleep(0.01)
    try:
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


async def deliver(settings: Settings, requests: Sequence[tuple[str, bytes, dict[str, str]]]) -> None:
    """Post each ``(path, body, headers)`` in turn to a real edge under `settings`; each must get 202."""
    with running_edge(settings) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            for path, body, headers in requests:
                answer = await http.post(path, content=body, headers=headers)
                assert answer.status_code == 202, answer.text
