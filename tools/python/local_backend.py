"""The `local` backend: an ipykernel on the host, for machines without Docker.

Nothing is isolated (files, network, memory are the host's); only the timeout and the output
limit apply. It exists because it is explicitly asked for, and says so when used.
"""

from __future__ import annotations

import logging
import sysconfig
import warnings
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager

from tools.python import hostfiles
from tools.python.config import SandboxConfig
from tools.python.errors import SandboxError

log = logging.getLogger(__name__)

UNSANDBOXED = (
    "The python tool's local backend runs model-written code directly on this machine, "
    "with your user's permissions and network access and no resource limits. Use the "
    "default docker backend unless you trust the code."
)


class LocalBackend:
    """A host kernel started by jupyter_client's KernelManager, working in the data folder."""

    def __init__(self, config: SandboxConfig, data_dir: Path) -> None:
        warnings.warn(UNSANDBOXED, UserWarning, stacklevel=4)
        log.warning(UNSANDBOXED)
        self.data_dir = data_dir
        self.data_path = str(data_dir)
        self._manager = KernelManager(kernel_name="python3")

    def start(self) -> dict[str, Any]:
        """Start in the standard library's folder (never on `sys.path` as anything else), with
        IPython told to leave the working directory off `sys.path`, then move to the data
        folder: files there are the code's to read and write, never the next kernel's code."""
        try:
            self._manager.start_kernel(
                cwd=sysconfig.get_path("stdlib"),
                extra_arguments=[
                    "--IPKernelApp.ignore_cwd=True",
                    f"--IPKernelApp.exec_lines=__import__('os').chdir({str(self.data_dir)!r})",
                ],
            )
        except Exception as exc:  # jupyter raises many kinds here
            raise SandboxError(
                f"Could not start a local ipykernel ({exc}); install it with "
                "`pip install ipykernel` in this environment."
            ) from exc
        return self._manager.get_connection_info()

    def alive(self) -> bool:
        return self._manager.is_alive()

    def interrupt(self) -> None:
        if self.alive():
            self._manager.interrupt_kernel()

    def at_process_limit(self) -> bool:
        """No process limit applies on the host."""
        return False

    def restart(self) -> dict[str, Any]:
        # restart=True keeps the manager's ZeroMQ context, which the next start needs.
        self._manager.shutdown_kernel(now=True, restart=True)
        return self.start()

    def death_note(self) -> str:
        provisioner = self._manager.provisioner
        code = provisioner.process.returncode if provisioner and provisioner.process else None
        if code is not None and code < 0:
            return f"the kernel was killed by signal {-code}"
        return f"the kernel exited with code {code}"

    def logs(self) -> str:
        return ""

    def kernel_started(self) -> None:
        """Nothing to lock: the kernel is this user's own process."""

    def save_file(self, extension: str, data: bytes) -> str:
        """A figure in the data folder, under a name not yet taken by anything (the code can
        plant links there too; one is never written through)."""
        name = hostfiles.write_new_file(self.data_dir, "figure", extension, data)
        return str(self.data_dir / name)

    def sync_data(self) -> list[str]:
        """The kernel works in `data_dir` itself: nothing to copy."""
        return []

    def close(self) -> None:
        if self._manager.has_kernel:
            self._manager.shutdown_kernel(now=True)
