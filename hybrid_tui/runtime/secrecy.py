"""Keep the coordinator's secrets out of reach of the commands it runs.

Room: runtime. Touches only this process: its initial environment block (through
``/proc/self/mem``), libc's environment (``os.putenv``) and its dumpable flag (``prctl``).

Removing the API key from a validation command's environment is not enough: the command can
read its parent's ``/proc/PID/environ``, which shows the environment block the kernel wrote
when this process was exec'd, whatever Python or libc did with the variables since. So the
value is overwritten in that block (the kernel reads ``env_start..env_end`` of our memory) and
kept only in Python's ``os.environ`` and a heap copy in libc's environment; and, where we are
not root, the process is made non-dumpable, which makes its ``/proc`` files (``environ``,
``mem``) readable by root only. Root can read any process's memory: commands run as root are
only kept from the environment block, not from the coordinator's heap.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from hybrid_tui.vocabulary import MIN_SECRET_LENGTH, secret_env_names

__all__ = ["hide_secrets_from_children"]

_PR_SET_DUMPABLE = 4
_ENV_START_FIELD = 50  # 1-based field numbers of /proc/PID/stat (proc(5))
_MASK = b"*"


def _environment_block_bounds() -> tuple[int, int]:
    stat = Path("/proc/self/stat").read_text()
    # Fields after the command name (which may hold spaces and parentheses) start at field 3.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[_ENV_START_FIELD - 3]), int(fields[_ENV_START_FIELD - 2])


def _masked(block: bytes, values: list[bytes]) -> bytes:
    """``block`` with every secret value replaced by as many ``*`` (the block keeps its size
    and its NUL-separated shape, so libc's pointers into it stay valid)."""
    out = bytearray(block)
    for value in values:
        start = out.find(value)
        while start != -1:
            out[start:start + len(value)] = _MASK * len(value)
            start = out.find(value, start + len(value))
    return bytes(out)


def _scrub_environment_block(values: list[bytes]) -> bool:
    try:
        start, end = _environment_block_bounds()
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            block = mem.read(end - start)
            masked = _masked(block, values)
            if masked != block:
                mem.seek(start)
                mem.write(masked)
        return True
    except (OSError, ValueError, IndexError):  # no /proc, or a kernel that refuses: best effort
        return False


def _set_not_dumpable() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def hide_secrets_from_children(names: tuple[str, ...] | None = None) -> bool:
    """Make the values of the secret variables (``names``, default every name of
    :func:`~hybrid_tui.vocabulary.secret_env_names`) unreadable to this process's children
    where the platform allows. Idempotent; returns whether the environment block was scrubbed."""
    if not sys.platform.startswith("linux"):
        return False
    names = secret_env_names() if names is None else names
    present = {name: os.environ[name] for name in names if len(os.environ.get(name, "")) >= MIN_SECRET_LENGTH}
    if not present:
        return False
    scrubbed = _scrub_environment_block(sorted({v.encode() for v in present.values()}, key=len, reverse=True))
    for name, value in present.items():
        # libc's own entry pointed into the block we just masked: give it a heap copy, so a
        # child started with the inherited environment (an agent CLI) still gets the key.
        os.putenv(name, value)
    if os.geteuid() != 0:
        _set_not_dumpable()
    return scrubbed
