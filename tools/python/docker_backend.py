"""Container lifecycle for the docker backend: one locked-down container per session.

The kernel inside binds its ZeroMQ sockets as unix sockets (`ipc` transport) in a host
folder bind-mounted at /run/kernel, so the host reaches it with `--network none`. Every
container is labelled with its owner (host name and pid): the owner removes it on close or
at exit, and a later process removes the ones whose owner died without doing so.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container
from requests.exceptions import RequestException

from tools.python.config import SandboxConfig
from tools.python.errors import SandboxError
from tools.python.image import connect, ensure_image

SANDBOX_LABEL = "oss-agent.sandbox"
OWNER_PID_LABEL = "oss-agent.pid"
OWNER_HOST_LABEL = "oss-agent.host"
KERNEL_DIR = "/run/kernel"
DATA_DIR = "/mnt/data"


def owned_filters(pid: int | None = None) -> dict[str, list[str]]:
    """Docker label filters selecting this host's sandboxes (of one owner pid if given)."""
    labels = [f"{SANDBOX_LABEL}=1", f"{OWNER_HOST_LABEL}={socket.gethostname()}"]
    if pid is not None:
        labels.append(f"{OWNER_PID_LABEL}={pid}")
    return {"label": labels}


def remove_stale(client: docker.DockerClient) -> list[str]:
    """Remove this host's sandboxes whose owning process is gone; return their names."""
    removed = []
    for container in client.containers.list(all=True, filters=owned_filters()):
        pid = int(container.labels.get(OWNER_PID_LABEL, "0"))
        if not _process_alive(pid):
            try:
                container.remove(force=True)
            except NotFound:  # another process cleaned it up first
                continue
            removed.append(container.name)
    return removed


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _sandbox_ids(user: str | None) -> tuple[str, int | None, int | None]:
    """The `--user` value and its numeric ids (None when given by name)."""
    if user is None:
        uid, gid = (os.getuid(), os.getgid()) if os.getuid() != 0 else (65534, 65534)
        return f"{uid}:{gid}", uid, gid
    uid_s, _, gid_s = user.partition(":")
    uid = int(uid_s) if uid_s.isdigit() else None
    gid = int(gid_s) if gid_s.isdigit() else uid
    return user, uid, gid


class DockerBackend:
    """Starts, restarts and removes the session's container; knows whether it still runs."""

    data_path = DATA_DIR

    def __init__(self, config: SandboxConfig, data_dir: Path) -> None:
        self._config = config
        self._client = connect()
        self._image = ensure_image(self._client, config.image)
        remove_stale(self._client)
        self._user, self._uid, self._gid = _sandbox_ids(config.user)
        self.data_dir = data_dir
        self._kernel_dir = Path(tempfile.mkdtemp(prefix="oss-agent-kernel-"))
        self.give_to_sandbox(self._kernel_dir)
        self.give_to_sandbox(self.data_dir)
        self._container: Container | None = None
        self._exited = threading.Event()
        self._generation = 0

    def start(self) -> dict[str, Any]:
        """Start a fresh container and kernel; return the host side's connection info."""
        self._generation += 1
        name = f"k{self._generation}"
        info = {
            "transport": "ipc",
            "ip": f"{KERNEL_DIR}/{name}",
            "shell_port": 1,
            "iopub_port": 2,
            "stdin_port": 3,
            "control_port": 4,
            "hb_port": 5,
            "key": secrets.token_hex(32),
            "signature_scheme": "hmac-sha256",
        }
        conn_file = self._kernel_dir / f"{name}.json"
        conn_file.write_text(json.dumps(info))
        self.give_to_sandbox(conn_file)
        cfg = self._config
        tmp_opts = f"rw,nosuid,nodev,size={cfg.tmpfs_size}" + (",noexec" if cfg.tmp_noexec else "")
        try:
            self._container = self._client.containers.run(
                self._image,
                [
                    "python3",
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    f"{KERNEL_DIR}/{name}.json",
                    "--HistoryManager.hist_file=:memory:",
                ],
                name=f"oss-agent-python-{os.getpid()}-{secrets.token_hex(4)}",
                detach=True,
                init=True,  # PID 1 reaps zombies and forwards SIGINT to the kernel
                labels={
                    SANDBOX_LABEL: "1",
                    OWNER_PID_LABEL: str(os.getpid()),
                    OWNER_HOST_LABEL: socket.gethostname(),
                },
                network_mode=None if cfg.network else "none",
                read_only=cfg.read_only,
                user=self._user,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=cfg.memory,
                memswap_limit=cfg.memory,
                nano_cpus=int(cfg.cpus * 1e9),
                pids_limit=cfg.pids_limit,
                tmpfs={"/tmp": tmp_opts},
                volumes={
                    str(self._kernel_dir): {"bind": KERNEL_DIR, "mode": "rw"},
                    str(self.data_dir): {"bind": DATA_DIR, "mode": "rw"},
                },
                working_dir=DATA_DIR,
            )
        except DockerException as exc:
            raise SandboxError(f"Could not start the sandbox container: {exc}") from exc
        self._exited = threading.Event()
        threading.Thread(
            target=self._watch, args=(self._container, self._exited), daemon=True
        ).start()
        return {**info, "ip": str(self._kernel_dir / name)}

    def alive(self) -> bool:
        return self._container is not None and not self._exited.is_set()

    def interrupt(self) -> None:
        """SIGINT to the container's init, which forwards it to the kernel."""
        if self.alive():
            # DockerException: it exited meanwhile, which the caller notices next.
            with contextlib.suppress(DockerException):
                self._container.kill(signal="SIGINT")

    def at_process_limit(self) -> bool:
        """Whether processes fill half the pids limit or more: a fork bomb's leftovers, which
        an interrupt does not reach and which would leave the sandbox unable to spawn."""
        try:
            processes = self._container.top()["Processes"]
        except DockerException:
            return False
        return len(processes) >= self._config.pids_limit // 2

    def restart(self) -> dict[str, Any]:
        """Replace the container: kills every process of the old one, whatever it does."""
        self._remove_container()
        return self.start()

    def death_note(self) -> str:
        """Why the container's kernel stopped, in words for the model."""
        try:
            self._container.reload()
            state = self._container.attrs["State"]
        except DockerException:
            return "the kernel stopped"
        if state.get("OOMKilled"):
            return f"the kernel ran out of memory (limit {self._config.memory})"
        code = state.get("ExitCode", 0)
        if code > 128:
            try:
                return f"the kernel was killed by {signal.Signals(code - 128).name}"
            except ValueError:
                pass
        return f"the kernel exited with code {code}"

    def logs(self) -> str:
        try:
            return self._container.logs(tail=30).decode(errors="replace")
        except DockerException:
            return ""

    def give_to_sandbox(self, path: Path) -> None:
        """A root host makes its files the sandbox user's, who could not use them otherwise."""
        if os.getuid() == 0 and self._uid is not None:
            os.chown(path, self._uid, self._gid)

    def close(self) -> None:
        """Remove the container and the kernel folder. Safe to call twice."""
        self._remove_container()
        shutil.rmtree(self._kernel_dir, ignore_errors=True)
        self._client.close()

    def _remove_container(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(NotFound):
                container.remove(force=True)
        # Socket files of the old kernel; a new one binds fresh names anyway.
        for path in self._kernel_dir.glob("k*"):
            path.unlink(missing_ok=True)

    @staticmethod
    def _watch(container: Container, exited: threading.Event) -> None:
        """Block until the container stops, then mark it (how a dead kernel is noticed)."""
        while True:
            try:
                container.wait(timeout=3600)
                break
            except RequestException:  # the long poll timed out, or the engine went away
                try:
                    container.reload()
                except (DockerException, RequestException):
                    break
                if container.status not in ("created", "running"):
                    break
            except DockerException:  # removed
                break
        exited.set()
