"""Fixtures of the core tests.

Every record a :class:`Scheduler` call returns, in every scenario of these tests, must be
one of :data:`~hybrid_tui.core.changes.CHANGE_TYPES`: the closed set the runtime handles.
``emitted_changes`` checks each record as it comes out of a call and keeps them all.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hybrid_tui.core import CHANGE_TYPES, Change, Scheduler

from .helpers import CALLS_RETURNING_CHANGES


def _checking(name: str, call: Callable[..., Any], emitted: list[Change]) -> Callable[..., Any]:
    @functools.wraps(call)
    def checked(*args: Any, **kwargs: Any) -> Any:
        result = call(*args, **kwargs)
        records = result[-1] if isinstance(result, tuple) else result
        for record in records:
            assert isinstance(record, CHANGE_TYPES), f"Scheduler.{name} returned {record!r}, which is no Change"
        emitted.extend(records)
        return result

    return checked


@pytest.fixture(scope="package", autouse=True)
def emitted_changes() -> Iterator[list[Change]]:
    """Every record the Scheduler returned during the core tests so far (a record may appear
    twice when one call makes another, e.g. an auto-pause). Package-scoped: it wraps the
    Scheduler class for the whole of tests/core (function-scoped fixtures do not mix with
    Hypothesis' ``@given``); a test that needs only its own records clears the list first."""
    emitted: list[Change] = []
    with pytest.MonkeyPatch.context() as patch:
        for name in CALLS_RETURNING_CHANGES:
            raw = inspect.getattr_static(Scheduler, name)
            if isinstance(raw, classmethod):
                patch.setattr(Scheduler, name, classmethod(_checking(name, raw.__func__, emitted)))
            else:
                patch.setattr(Scheduler, name, _checking(name, raw, emitted))
        yield emitted
