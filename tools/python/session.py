"""`PythonSession`: one stateful kernel, and the text the model sees for each code string.

This is where faults become messages: a timeout interrupts (or, failing that, restarts)
the kernel, a dead kernel is restarted, and the model is told which state survived.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import shutil
import threading
import weakref
from pathlib import Path
from typing import Any, Protocol

from tools.python import hostfiles
from tools.python.config import SandboxConfig
from tools.python.errors import SandboxError
from tools.python.kernel import Kernel, KernelDied

log = logging.getLogger(__name__)
_open: weakref.WeakSet[PythonSession] = weakref.WeakSet()


class Backend(Protocol):
    """Where the kernel runs (`docker_backend.DockerBackend`, `local_backend.LocalBackend`)."""

    data_dir: Path  # the host folder behind `data_path`
    data_path: str  # that folder as the kernel sees it

    def start(self) -> dict[str, Any]: ...
    def alive(self) -> bool: ...
    def interrupt(self) -> None: ...
    def at_process_limit(self) -> bool: ...
    def kernel_started(self) -> None: ...
    def restart(self) -> dict[str, Any]: ...
    def death_note(self) -> str: ...
    def logs(self) -> str: ...
    def save_file(self, extension: str, data: bytes) -> str: ...
    def sync_data(self) -> list[str]: ...
    def close(self) -> None: ...


class PythonSession:
    """A stateful Python kernel (in a Docker sandbox by default).

        with PythonSession(timeout=10) as py:
            py.run("x = 2")
            print(py.run("x * 21"))  # 42

    The kernel starts on `start()`, entering the context, or the first run. Calls are
    serialised; `run` and `arun` may be mixed and called from any thread.
    """

    def __init__(self, config: SandboxConfig | None = None, **options: Any) -> None:
        """`options` are SandboxConfig fields, overriding those of `config`."""
        base = config or SandboxConfig()
        self.config = base.model_validate({**base.model_dump(), **options})
        self._lock = threading.Lock()
        self._backend: Backend | None = None
        self._kernel: Kernel | None = None

    @property
    def data_dir(self) -> Path | None:
        """The host folder behind /mnt/data (None until started). In the docker sandbox it
        receives /mnt/data's files on `sync_data()` and, when it is `config.data_dir`, on
        close; the local backend's kernel works in it directly."""
        return self._backend.data_dir if self._backend else None

    def sync_data(self) -> list[str]:
        """Copy the files in /mnt/data to `data_dir` now; return what was left out and why
        (links, special files, sizes past the quota)."""
        with self._lock:
            self._ensure_started()
            return self._backend.sync_data()

    def start(self) -> PythonSession:
        with self._lock:
            self._ensure_started()
        return self

    def run(self, code: str) -> str:
        """Execute `code` and return the text the model would see."""
        with self._lock:
            self._ensure_started()
            return self._run(code)

    async def arun(self, code: str) -> str:
        """`run` without blocking the event loop. Cancelling it interrupts the kernel, so
        the execution stops instead of running on in its thread."""
        try:
            return await asyncio.to_thread(self.run, code)
        except asyncio.CancelledError:
            self.interrupt()
            raise

    def interrupt(self) -> None:
        """Interrupt the running execution (KeyboardInterrupt in the code); callable from
        any thread, a no-op when the kernel is not started."""
        backend = self._backend
        if backend is not None:
            backend.interrupt()

    def close(self) -> None:
        """Stop the kernel and remove its container (and the data folder if it made it).
        Waits for a running execution to end. Safe to call twice."""
        with self._lock:
            self._close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> PythonSession:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> PythonSession:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _ensure_started(self) -> None:
        if self._backend is not None:
            return
        data_dir = self.config.data_dir or hostfiles.new_session_folder("data")
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.config.backend == "docker":
                from tools.python.docker_backend import DockerBackend

                self._backend = DockerBackend(self.config, data_dir)
            else:
                from tools.python.local_backend import LocalBackend

                self._backend = LocalBackend(self.config, data_dir)
        except BaseException:  # e.g. no Docker engine: leave no empty folder behind
            if self.config.data_dir is None:
                shutil.rmtree(data_dir, ignore_errors=True)
            raise
        _open.add(self)
        try:
            self._connect(self._backend.start())
        except BaseException:
            self._close()
            raise

    def _connect(self, connection_info: dict[str, Any]) -> None:
        self._kernel = Kernel(connection_info, self._backend.save_file)
        try:
            self._kernel.wait_ready(self.config.startup_timeout, self._backend.alive)
            self._backend.kernel_started()
        except (KernelDied, TimeoutError) as exc:
            reason = "it exited" if isinstance(exc, KernelDied) else str(exc)
            raise SandboxError(
                f"The python kernel did not start ({reason}). If the image was changed, "
                f"rebuild it with `oss-agent sandbox build --rebuild`. Kernel log:\n"
                f"{self._backend.logs()}"
            ) from exc

    def _run(self, code: str) -> str:
        cfg, backend, kernel = self.config, self._backend, self._kernel
        result = kernel.execute(code, cfg.timeout, cfg.max_output_chars, backend.alive)
        timed_out, status = result.status == "timeout", result.status
        if timed_out:
            backend.interrupt()
            grace = cfg.interrupt_grace
            status = kernel.collect(result.msg_id, result.output, grace, backend.alive)
        late = f"Execution timed out after {cfg.timeout:g} seconds"
        lost = f"all variables and imports are lost; files in {backend.data_path} are kept"
        if status == "died":
            reason = backend.death_note()
            self._restart()
            note = f"[Execution failed: {reason}. The kernel was restarted: {lost}.]"
        elif status == "timeout":
            self._restart()
            note = f"[{late} and did not stop when interrupted. The kernel was restarted: {lost}.]"
        elif (timed_out or result.output.error) and backend.at_process_limit():
            self._restart()
            note = (
                f"[Execution failed: the code filled the sandbox's limit of {cfg.pids_limit} "
                f"processes and threads. The kernel was restarted: {lost}.]"
            )
        elif timed_out:
            note = f"[{late} and was interrupted; variables and imports are kept.]"
        else:
            note = ""
        text = result.output.text()
        if note:
            text += ("\n" if text and not text.endswith("\n") else "") + note
        return text

    def _restart(self) -> None:
        log.info("restarting the python kernel (data folder %s kept)", self._backend.data_dir)
        self._kernel.close()
        self._kernel = None
        try:
            self._connect(self._backend.restart())
        except BaseException:  # leave nothing half-started; a later run starts afresh
            self._close()
            raise

    def _close(self) -> None:
        """Forget the kernel and backend first, so that whatever fails while tearing them
        down, the session is closed (a later run starts afresh)."""
        kernel, backend = self._kernel, self._backend
        self._kernel = self._backend = None
        _open.discard(self)
        try:
            if kernel is not None:
                kernel.close()
        finally:
            if backend is not None:
                try:
                    backend.close()
                finally:
                    if self.config.data_dir is None:
                        shutil.rmtree(backend.data_dir, ignore_errors=True)


@atexit.register
def _close_all() -> None:
    """Sessions left open at exit: remove their containers and folders all the same."""
    for session in list(_open):
        with contextlib.suppress(Exception):  # best effort while the interpreter exits
            session._close()
