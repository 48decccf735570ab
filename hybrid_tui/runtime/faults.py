"""Fault injection for the crash tests: die like a power cut at one named point of a run.

Room: runtime. ``HYBRID_TUI_CRASH_AT=<point>:<id>`` (e.g. ``integrated:b``) makes the
coordinator SIGKILL itself when it reaches ``point`` for task (or issue) ``id``; unset, each
call is one dictionary lookup. Points: ``planning`` (issue id), ``dispatch``,
``implemented``, ``validation``, ``integrated`` and ``rollback`` (task ids). Nothing is
flushed or cleaned up on purpose: the point is to prove that recovery copes.
"""

from __future__ import annotations

import os
import signal

ENV = "HYBRID_TUI_CRASH_AT"


def crash_point(point: str, subject: str) -> None:
    """SIGKILL this process when ``HYBRID_TUI_CRASH_AT`` names ``point:subject``."""
    if ENV not in os.environ:  # the usual case, several times a task: one lookup
        return
    if os.environ[ENV] == f"{point}:{subject}":
        os.kill(os.getpid(), signal.SIGKILL)
