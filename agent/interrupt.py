"""Ctrl-C for the command line: cancel what is running, and only then give up on it.

The first Ctrl-C cancels the running coroutine: its cleanups run (a python cell is
interrupted, the generation stopped, the conversation put back as it was) and
`KeyboardInterrupt` is raised once it has wound down. A second Ctrl-C while it still
winds down (code that ignores the interrupt) exits the process at once with status 130,
after the exit handlers that remove sandboxes.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


def run_interruptibly(
    coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop | None = None
) -> T:
    """Run `coro` to its end in the main thread, Ctrl-C handled as above: on `loop`, or
    on a new loop closed afterwards (as `asyncio.run` does)."""
    if loop is None:
        loop = asyncio.new_event_loop()
        try:
            return run_interruptibly(coro, loop)
        finally:
            close_loop(loop)
    task = loop.create_task(coro)
    presses = 0

    def on_sigint(signum: int, frame: object) -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            force_exit()
        loop.call_soon_threadsafe(task.cancel)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if presses:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Finish async generators and close the loop; threads still running are not waited
    for here (the interpreter joins them at exit)."""
    try:
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


FORCED_CLEANUP_SECONDS = 5.0


def force_exit() -> NoReturn:
    """Exit now, whatever threads still run. The exit handlers (which remove sandboxes) get
    `FORCED_CLEANUP_SECONDS`; a handler stuck on a busy resource does not hold the exit."""
    sys.stderr.write("\nforced exit\n")
    sys.stderr.flush()
    watchdog = threading.Timer(FORCED_CLEANUP_SECONDS, os._exit, args=(130,))
    watchdog.daemon = True
    watchdog.start()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()  # what a normal exit runs, without waiting for threads
    os._exit(130)
