"""Talking to one running kernel with jupyter_client: run code, collect what the model sees.

Only the client's plain (synchronous) channel calls are used, so a session may call in from
any thread (one at a time), and a poll interval lets the caller notice a dead kernel.
"""

from __future__ import annotations

import base64
import contextlib
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from jupyter_client import BlockingKernelClient

from agent.safe_text import safe_text

_POLL = 0.05  # seconds between checks that the kernel still lives while waiting
_IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}


# done: the kernel went idle; timeout: still running when we stopped waiting; died: it is gone.
Status = Literal["done", "timeout", "died"]


class KernelDied(Exception):
    """The kernel process went away while we waited for it to start."""


@dataclass
class Output:
    """What one execution printed, cut to `limit` characters: the first and the last half,
    since the end holds what matters most (the traceback, the last values of a loop).
    Control sequences (colours, screen clears, ...) are defused as text arrives."""

    limit: int
    error: str | None = None  # the exception's name, if the code raised one
    head: str = ""
    tail: str = ""
    dropped: int = 0

    def add(self, text: str) -> None:
        text = safe_text(text)
        room = self.limit // 2 - len(self.head)
        if room > 0 and not self.tail:
            self.head += text[:room]
            text = text[room:]
        self.tail += text
        excess = len(self.tail) - (self.limit - self.limit // 2)
        if excess > 0:
            self.dropped += excess
            self.tail = self.tail[excess:]

    def text(self) -> str:
        if not self.dropped:
            return self.head + self.tail
        return (
            f"{self.head}\n[... {self.dropped} characters truncated; print less, or write large "
            f"results to a file ...]\n{self.tail}"
        )


@dataclass
class Result:
    """The outcome of `Kernel.execute`: how waiting ended, and what was printed until then."""

    msg_id: str
    output: Output
    status: Status


class Kernel:
    """A connected client of one kernel."""

    def __init__(self, connection_info: dict[str, Any], save_file: Callable[[str, bytes], str]):
        """`save_file(extension, data)` stores an image and returns the path to mention, or
        raises OSError (e.g. the data folder is full)."""
        self._client = BlockingKernelClient()
        self._client.load_connection_info(connection_info)
        self._client.start_channels(stdin=False, hb=False)
        self._save_file = save_file

    def wait_ready(self, timeout: float, alive: Callable[[], bool]) -> None:
        """Block until the kernel answers on shell and iopub (a SUB socket drops what is
        published before it is connected, so iopub must be seen working too)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise KernelDied
            msg_id = self._client.kernel_info()
            try:
                self._wait_reply(msg_id, min(1.0, deadline - time.monotonic()), alive)
                self._client.iopub_channel.get_msg(timeout=0.2)
            except (queue.Empty, TimeoutError):
                continue
            self._drain()
            return
        raise TimeoutError(f"the kernel did not answer within {timeout} s")

    def execute(
        self, code: str, timeout: float, max_chars: int, alive: Callable[[], bool]
    ) -> Result:
        """Run `code`; stop waiting after `timeout` s (the code may still be running)."""
        self._drain()
        msg_id = self._client.execute(code, store_history=True, allow_stdin=False)
        output = Output(max_chars)
        return Result(msg_id, output, self.collect(msg_id, output, timeout, alive))

    def collect(
        self, msg_id: str, output: Output, timeout: float, alive: Callable[[], bool]
    ) -> Status:
        """Add `msg_id`'s outputs to `output` until the kernel is idle, dies, or `timeout`."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            # The code runs in the kernel and holds its key: it can send any message at all,
            # so one that is not shaped as the protocol says is dropped, never raised.
            try:
                msg = self._client.iopub_channel.get_msg(timeout=min(remaining, _POLL))
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "status" and content["execution_state"] == "idle":
                    return "done"
                self._add(kind, content, output)
            except queue.Empty:
                if not alive():
                    return "died"
            except (AttributeError, TypeError, KeyError, ValueError):
                output.add("[a malformed message from the kernel was dropped]\n")
        return "timeout"

    def _add(self, kind: str, content: dict[str, Any], output: Output) -> None:
        if kind == "stream":
            output.add(content["text"])
        elif kind in ("execute_result", "display_data"):
            output.add(self._render(content["data"]))
        elif kind == "error":
            output.error = str(content["ename"])
            output.add("\n".join(content["traceback"]) + "\n")

    def close(self) -> None:
        self._client.stop_channels()

    def _render(self, data: dict[str, Any]) -> str:
        """Text for a rich output: images go to a file the model is told about."""
        for mime, ext in _IMAGE_TYPES.items():
            if mime in data:
                raw = data[mime]
                try:  # the code can display anything under any type (`raw=True`)
                    blob = raw.encode() if mime == "image/svg+xml" else base64.b64decode(raw)
                    path = self._save_file(ext, blob)
                except (AttributeError, TypeError, ValueError):
                    return f"[{mime} not saved: the data is not a valid {ext} image]\n"
                except OSError as exc:
                    return f"[{mime} not saved: {exc}]\n"
                return f"[{mime} saved to {path}]\n"
        if "text/plain" in data:
            return f"{data['text/plain']}\n"
        return f"[{', '.join(sorted(data))} output not shown]\n"

    def _wait_reply(self, msg_id: str, timeout: float, alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                reply = self._client.shell_channel.get_msg(timeout=min(remaining, _POLL))
            except queue.Empty:
                if not alive():
                    raise KernelDied from None
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return
        raise TimeoutError

    def _drain(self) -> None:
        """Drop replies and messages left from earlier requests. (The sync channels'
        `get_msgs()` blocks when nothing is ready, hence `msg_ready`.)"""
        for channel in (self._client.shell_channel, self._client.iopub_channel):
            while channel.msg_ready():
                with contextlib.suppress(KeyError, TypeError, ValueError):  # malformed: dropped
                    channel.get_msg(timeout=0)
