"""The admin page's routes: sign-in, overview, events, dead letters (with replay and delete), refusals.

Every route but the sign-in form needs `operator` (a bearer token or a session); every POST needs
`checked_form` (the CSRF token). Each page answers JSON when asked (``Accept: application/json``).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated

from arq.utils import timestamp_ms
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from relay.admin import chart, queries
from relay.admin.auth import LOGIN_COOKIE, LOGIN_SECONDS, SESSION_COOKIE, Operator, new_csrf, same
from relay.admin.forms import ENTRY_ID, BadInput, DeadFilter, parse_dead_filter, parse_search
from relay.admin.jobs import BulkJob, delete_all, replay_all
from relay.admin.web import (
    BadRequest,
    Conflict,
    CsrfRefused,
    NotFound,
    SafeJSONResponse,
    Throttled,
    Unauthorized,
    answer,
    checked_form,
    client_address,
    operator,
    render,
    state,
    wants_json,
)
from relay.core.keys import DEAD_STREAM
from relay.core.redis import redis_now_ms
from relay.edge import rejections
from relay.ops.deadletters import replay_letters
from relay.ops.deadletters import to_dict as dead_dict
from relay.ops.pacing import DEFAULT_RATE
from relay.ops.rejected import HINTS, shown_body
from relay.ops.rejected import to_dict as rejection_dict
from worker.deadletter import DeadLetter, get_dead

router = APIRouter()
Signed = Annotated[Operator, Depends(operator)]
Form = Annotated[dict[str, str], Depends(checked_form)]

OVERVIEW_REFRESH = 5
PROGRESS_REFRESH = 2
EVENTS_REFRESH = 5


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _see(request: Request, url: str, document: object) -> Response:
    """After a POST: the browser is sent on (303), a script gets `document`."""
    if wants_json(request):
        return SafeJSONResponse(document)
    return RedirectResponse(url, status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    token = new_csrf()
    response = render(request, "login.html", {"login_csrf": token})
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=LOGIN_SECONDS, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    admin = state(request)
    address = client_address(request)
    wait = admin.throttle.wait(address, time.monotonic())
    if wait > 0:
        raise Throttled(wait)
    form = await request.form()
    given_csrf, given_token = form.get("csrf"), form.get("token")
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not isinstance(given_csrf, str) or not expected or not same(given_csrf, expected):
        raise CsrfRefused("the sign-in form expired or came from elsewhere: open /login again")
    if not isinstance(given_token, str) or not admin.tokens.is_token(given_token.strip()):
        admin.throttle.failed(address, time.monotonic())
        raise Unauthorized()
    admin.throttle.succeeded(address)
    cookie, _ = admin.tokens.issue()
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=admin.tokens.session_seconds,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, form: Form) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
async def overview(request: Request, who: Signed) -> Response:
    admin = state(request)
    view = await queries.overview(admin.redis, admin.redis_name, admin.registry)
    drawn = chart.build(view.minutes)
    context = {"view": view, "chart": drawn, "now_ms": view.stats.time_ms}
    return answer(request, "overview.html", context, asdict(view), refresh=OVERVIEW_REFRESH)


@router.get("/events")
async def events(request: Request, who: Signed) -> Response:
    admin = state(request)
    params = dict(request.query_params)
    try:
        search = parse_search(params)
    except BadInput as exc:
        raise BadRequest(str(exc)) from None
    found, seen = await queries.search_events(admin.redis, search, admin.registry) if search else ([], 0)
    now_ms = await redis_now_ms(admin.redis)
    document = {
        "search": search.query() if search else {},
        "looked_at": seen,
        "events": [asdict(view) for view in found],
    }
    context = {
        "search": search,
        "params": params,
        "found": found,
        "seen": seen,
        "scan": queries.SEARCH_SCAN,
        "now_ms": now_ms,
    }
    # Refresh while a handler is still on its way, so that a replay is seen through to its end.
    moving = any(h.state not in ("done", "dead") for view in found for h in view.handlers)
    return answer(request, "events.html", context, document, refresh=EVENTS_REFRESH if moving else None)


def _dead_filter(params: dict[str, str]) -> DeadFilter:
    try:
        return parse_dead_filter(params)
    except BadInput as exc:
        raise BadRequest(str(exc)) from None


@router.get("/dead")
async def dead(request: Request, who: Signed) -> Response:
    admin = state(request)
    flt = _dead_filter(dict(request.query_params))
    now_ms = await redis_now_ms(admin.redis)
    scan = await queries.scan_dead(admin.redis, flt, now_ms)
    letters = scan.matching
    shown = list(reversed(letters[-queries.SHOWN :]))
    document = {
        "filter": flt.query(),
        "matching": len(letters),
        "dead_letters": [dead_dict(letter, traceback=False) for letter in shown],
    }
    context = {
        "filter": flt,
        "letters": shown,
        "matching": len(letters),
        "handlers": scan.handlers,
        "errors": scan.error_types,
        "now_ms": now_ms,
    }
    return answer(request, "dead.html", context, document)


@router.get("/dead/confirm")
async def confirm(request: Request, who: Signed) -> Response:
    admin = state(request)
    params = dict(request.query_params)
    action = params.get("action", "")
    if action not in ("replay", "delete"):
        raise BadRequest("action must be replay or delete")
    flt = _dead_filter(params)
    now_ms = await redis_now_ms(admin.redis)
    letters = (await queries.scan_dead(admin.redis, flt, now_ms)).matching
    upto = letters[-1].id if letters else ""
    document = {"action": action, "filter": flt.query(), "count": len(letters), "upto": upto}
    context = {"action": action, "filter": flt, "count": len(letters), "upto": upto}
    return answer(request, "confirm.html", context, document)


@router.post("/dead/bulk")
async def bulk(request: Request, form: Form) -> Response:
    admin = state(request)
    action = form.get("action", "")
    if action not in ("replay", "delete"):
        raise BadRequest("action must be replay or delete")
    flt = _dead_filter(form)
    if flt.upto is None:
        raise BadRequest("upto is missing: confirm the action from its confirmation page")
    now_ms = await redis_now_ms(admin.redis)
    letters = (await queries.scan_dead(admin.redis, flt, now_ms)).matching
    expires_ms = admin.settings.retention_ms

    async def work(job: BulkJob) -> None:
        if action == "replay":
            await replay_all(admin.redis, job, letters, admin.registry, admin.settings.tasks, expires_ms)
        else:
            await delete_all(admin.redis, job, letters)

    job = admin.jobs.start(action, flt.describe(), len(letters), work)
    return _see(request, f"/dead/jobs/{job.id}", job.to_dict())


@router.get("/dead/jobs/{job_id}")
async def job_progress(request: Request, job_id: str, who: Signed) -> Response:
    job = state(request).jobs.get(job_id)
    if job is None:
        raise NotFound("no such replay or delete job (jobs are forgotten when relay admin restarts)")
    refresh = None if job.finished else PROGRESS_REFRESH
    return answer(request, "job.html", {"job": job}, job.to_dict(), refresh=refresh)


async def _letter(request: Request, dead_id: str) -> DeadLetter:
    if not ENTRY_ID.fullmatch(dead_id):
        raise NotFound("no such dead letter: ids look like 1718000000000-0")
    letter = await get_dead(state(request).redis, dead_id)
    if letter is None:
        raise NotFound("no such dead letter: it was replayed, deleted, or never existed")
    return letter


@router.get("/dead/{dead_id}")
async def dead_letter(request: Request, dead_id: str, who: Signed) -> Response:
    letter = await _letter(request, dead_id)
    now_ms = await redis_now_ms(state(request).redis)
    context = {"letter": letter, "body": queries.pretty(letter.body), "now_ms": now_ms}
    return answer(request, "dead_letter.html", context, dead_dict(letter, traceback=True))


@router.post("/dead/{dead_id}/replay")
async def replay_one(request: Request, dead_id: str, form: Form) -> Response:
    admin = state(request)
    letter = await _letter(request, dead_id)
    report = await replay_letters(
        admin.redis,
        [letter],
        registry=admin.registry,
        tasks=admin.settings.tasks,
        rate=DEFAULT_RATE,
        expires_ms=admin.settings.retention_ms,
    )
    if report.refused:
        raise Conflict(f"not replayed: {report.refused[0][1]}")
    document = {"replayed": letter.id, "entry_id": letter.entry_id, "handler": letter.handler}
    return _see(request, f"/events?entry_id={letter.entry_id}", document)


@router.post("/dead/{dead_id}/delete")
async def delete_one(request: Request, dead_id: str, form: Form) -> Response:
    admin = state(request)
    letter = await _letter(request, dead_id)
    await admin.redis.xdel(DEAD_STREAM, letter.id)
    return _see(request, "/dead", {"deleted": letter.id})


@router.get("/rejected")
async def refused(request: Request, who: Signed) -> Response:
    admin = state(request)
    records = await rejections.recent(admin.redis, 100)
    total, kept = await rejections.totals(admin.redis)
    now_ms = timestamp_ms()
    document = {"refused": total, "recorded": kept, "latest": [rejection_dict(r) for r in records]}
    context = {
        "records": records,
        "total": total,
        "kept": kept,
        "hints": HINTS,
        "shown_body": shown_body,
        "now_ms": now_ms,
    }
    return answer(request, "rejected.html", context, document)
