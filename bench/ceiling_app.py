"""The ceiling: a bare Starlette route that answers 200 and does nothing else.

No server in this process can answer faster; the bench reports the edge against it to show how much
of the machine the HTTP stack itself takes. Run as ``uvicorn bench.ceiling_app:app``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def webhook(request: Request) -> Response:
    return Response(status_code=200)


app = Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])
