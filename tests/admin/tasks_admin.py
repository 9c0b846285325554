"""RELAY_TASKS for the admin tests' worker processes: the handlers of `tests.admin.handlers`."""

from __future__ import annotations

from relay.core.events import ReviewAdd, VoteAdd
from tests.admin.handlers import count_vote, moderate_review
from worker import on

on(ReviewAdd, max_attempts=1)(moderate_review)
on(VoteAdd)(count_vote)
