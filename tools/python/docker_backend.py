"""Container lifecycle for the docker backend: one locked-down kernel container per session.

The sandbox shares exactly two folders with the outside, and neither is a host folder the
code can write once it runs:

- /mnt/data is a Docker volume on tmpfs with a size limit (`SandboxConfig.data_size`), so
  the quota is enforced by the kernel: writing past it fails with "No space left on device",
  and nothing the code writes lands on the host's disk. (A bind-mounted host folder cannot be
  limited portably: Docker's size options need particular filesystems, and a loop device or
  a mount needs root.) The volume lives as long as the session and is held mounted by a small
  idle "holder" container, so files outlive kernel restarts. The host copies the user's
  folder (`SandboxConfig.data_dir`) in at start and the files back out on close or
  `sync_data()`, through `tar` run in the holder and an extraction that creates only regular
  files and folders, without following links and within the quota (`hostfiles`). Files in
  /mnt/data live in memory and count toward the memory limit of the kernel that wrote them.
  /mnt/data is noexec by default (`data_noexec`): with /tmp noexec too, the code can run only
  the image's own programs, never a binary it wrote (scripts still run through python3).
- /run/kernel is a host folder per kernel holding the connection file and the kernel's unix
  sockets (ZeroMQ's `ipc` transport), which is how the host reaches a kernel that has no
  network. It is writable while the kernel starts and binds its sockets; once the kernel
  answers, the host makes it read-only to the sandbox. That holds because the code runs as
  a user other than the host's (nobody by default), in a group of the host's, so it can
  neither write there nor change the folder's mode, while the host reaches the sockets
  through the group.

The kernel starts as `python3 -I` with `/` as its working directory and IPython told not to
put the working directory on `sys.path`; it then changes to /mnt/data, so relative paths in
the code land there, but nothing the code wrote is ever imported unless it asks for it (a
planted `ipykernel_launcher.py` or `numpy.py` does not take over the next kernel).

Every container and volume is labelled with its owner (host name and pid): the owner removes
them on close or at exit, and a later process removes those whose owner died.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, NotFound
from docker.models.containers import Container
from docker.types import Mount
from requests.exceptions import RequestException

from tools.python import hostfiles
from tools.python.config import SandboxConfig, size_in_bytes
from tools.python.errors import SandboxError
from tools.python.image import connect, ensure_image

log = logging.getLogger(__name__)

SANDBOX_LABEL = "oss-agent.sandbox"
OWNER_PID_LABEL = "oss-agent.pid"
OWNER_HOST_LABEL = "oss-agent.host"
KERNEL_DIR = "/run/kernel"
DATA_DIR = "/mnt/data"
NOBODY = 65534


def owned_filters(pid: int | None = None) -> dict[str, list[str]]:
    """Docker label filters selecting this host's sandboxes (of one owner pid if given)."""
    labels = [f"{SANDBOX_LABEL}=1", f"{OWNER_HOST_LABEL}={socket.gethostname()}"]
    if pid is not None:
        labels.append(f"{OWNER_PID_LABEL}={pid}")
    return {"label": labels}


def owner_labels() -> dict[str, str]:
    """Labels naming this process as a sandbox object's owner (see `remove_stale`)."""
    return {
        SANDBOX_LABEL: "1",
        OWNER_PID_LABEL: str(os.getpid()),
        OWNER_HOST_LABEL: socket.gethostname(),
    }


def remove_stale(client: docker.DockerClient) -> list[str]:
    """Remove this host's sandbox containers, data volumes and session folders whose owning
    process is gone; return their names."""
    removed = []
    # Listing inspects each container: one its live owner removes meanwhile is skipped.
    listed = client.containers.list(all=True, filters=owned_filters(), ignore_removed=True)
    for container in listed:
        if not _process_alive(int(container.labels.get(OWNER_PID_LABEL, "0"))):
            try:
                container.remove(force=True)
            except NotFound:  # another process cleaned it up first
                continue
            removed.append(container.name)
    for volume in client.volumes.list(filters=owned_filters()):
        labels = volume.attrs.get("Labels") or {}
        if not _process_alive(int(labels.get(OWNER_PID_LABEL, "0"))):
            try:
                volume.remove(force=True)
            except NotFound:
                continue
            except APIError:  # still mounted by a container being removed; next time
                continue
            removed.append(volume.name)
    return removed + hostfiles.remove_stale_folders(_process_alive)


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


def _sandbox_ids(user: str | None) -> tuple[int, int]:
    """The uid and gid the code runs as (see `SandboxConfig.user`)."""
    host_uid = os.getuid()
    if user is None:
        uid, gid = NOBODY, (os.getgid() if host_uid != 0 else NOBODY)
    else:
        uid_s, _, gid_s = user.partition(":")
        if not (uid_s.isdigit() and gid_s.isdigit()):
            raise SandboxError(f"SandboxConfig.user must be numeric `uid:gid`, not {user!r}.")
        uid, gid = int(uid_s), int(gid_s)
    if uid == host_uid:
        raise SandboxError(
            f"The sandbox cannot run as uid {uid}, this process's own user: the code would own "
            "the kernel's folder on the host. Leave SandboxConfig.user unset or pick another uid."
        )
    if host_uid != 0 and gid not in (os.getgid(), *os.getgroups()):
        raise SandboxError(
            f"The sandbox's group {gid} must be one of this user's groups, through which the "
            "host reaches the kernel; leave SandboxConfig.user unset or pick one of yours."
        )
    return uid, gid


class DockerBackend:
    """Starts, restarts and removes the session's containers; knows whether the kernel runs."""

    data_path = DATA_DIR

    def __init__(self, config: SandboxConfig, data_dir: Path) -> None:
        self._config = config
        self._uid, self._gid = _sandbox_ids(config.user)
        self._quota = size_in_bytes(config.data_size)
        self._client = connect()
        self._image = ensure_image(self._client, config.image)
        remove_stale(self._client)
        self.data_dir = data_dir
        self._root = hostfiles.new_session_folder("kernel")
        self._kernel_dir: Path | None = None
        self._container: Container | None = None
        self._holder: Container | None = None
        self._volume: Any = None
        self._exited = threading.Event()
        self._generation = 0
        # The holder starts (and the user's files go in) while the kernel boots; the first
        # `kernel_started` waits for it, before any code runs.
        self._holder_error: BaseException | None = None
        self._holder_thread = threading.Thread(target=self._start_holder, daemon=True)
        try:
            self._create_volume()
        except BaseException:
            self.close()
            raise
        self._holder_thread.start()

    def _common(self) -> dict[str, Any]:
        """What every container of the session shares: owner labels, no privileges."""
        return {
            "detach": True,
            "labels": owner_labels(),
            "read_only": self._config.read_only,
            "user": f"{self._uid}:{self._gid}",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mounts": [Mount(DATA_DIR, self._volume.name, type="volume", no_copy=True)],
        }

    def _create_volume(self) -> None:
        """The quota'd tmpfs volume behind /mnt/data."""
        # An inode per 4 KiB of quota: empty files cannot add up past the quota on the host.
        inodes = max(self._quota // 4096, 1024)
        options = (
            f"size={self._quota},nr_inodes={inodes},uid={self._uid},gid={self._gid},mode=0700,"
            "nosuid,nodev"
        )
        if self._config.data_noexec:
            options += ",noexec"
        try:
            self._volume = self._client.volumes.create(
                f"oss-agent-data-{os.getpid()}-{secrets.token_hex(4)}",
                driver="local",
                driver_opts={"type": "tmpfs", "device": "tmpfs", "o": options},
                labels=owner_labels(),
            )
        except DockerException as exc:
            raise SandboxError(f"Could not create the sandbox's /mnt/data: {exc}") from exc

    def _start_holder(self) -> None:
        """Run the idle container that keeps the volume mounted, and copy the user's folder
        in; a failure is kept for `kernel_started` to raise."""
        try:
            self._holder = self._client.containers.run(
                self._image,
                ["sleep", "infinity"],
                name=self._volume.name,
                network_mode="none",
                mem_limit="64m",
                pids_limit=16,
                **self._common(),
            )
            self._copy_in()
        except DockerException as exc:
            self._holder_error = SandboxError(f"Could not start the sandbox's /mnt/data: {exc}")
        except BaseException as exc:
            self._holder_error = exc

    def _copy_in(self) -> None:
        if self._config.data_dir is None or not any(self.data_dir.iterdir()):
            return
        try:
            archive = hostfiles.archive_folder(self.data_dir, self._quota)
        except ValueError as exc:
            raise SandboxError(
                f"{exc}, the quota of /mnt/data: raise SandboxConfig.data_size or choose "
                "another data_dir."
            ) from exc
        with archive:
            try:
                self._holder.put_archive(DATA_DIR, archive)
            except DockerException as exc:
                raise SandboxError(f"Could not copy {self.data_dir} into /mnt/data: {exc}") from exc

    def start(self) -> dict[str, Any]:
        """Start a fresh kernel container; return the host side's connection info."""
        self._generation += 1
        self._kernel_dir = kernel_dir = self._root / f"k{self._generation}"
        kernel_dir.mkdir()
        os.chown(kernel_dir, -1, self._gid)
        os.chmod(kernel_dir, 0o770)  # the kernel binds its sockets here...
        info = {
            "transport": "ipc",
            "ip": f"{KERNEL_DIR}/k",
            "shell_port": 1,
            "iopub_port": 2,
            "stdin_port": 3,
            "control_port": 4,
            "hb_port": 5,
            "key": secrets.token_hex(32),
            "signature_scheme": "hmac-sha256",
        }
        fd = os.open(kernel_dir / "kernel.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as file:
            os.fchown(fd, -1, self._gid)
            os.fchmod(fd, 0o640)
            file.write(json.dumps(info))
        cfg = self._config
        tmp_opts = f"rw,nosuid,nodev,size={cfg.tmpfs_size}" + (",noexec" if cfg.tmp_noexec else "")
        command = [
            "sh",
            "-c",  # umask: the sockets must be usable by the host, through the group
            'umask 007 && exec python3 -I -B -m ipykernel_launcher "$@"',
            "kernel",
            "-f",
            f"{KERNEL_DIR}/kernel.json",
            "--HistoryManager.hist_file=:memory:",
            "--IPKernelApp.ignore_cwd=True",
            f"--IPKernelApp.exec_lines=__import__('os').chdir('{DATA_DIR}')",
        ]
        common = self._common()
        common["mounts"].append(Mount(KERNEL_DIR, str(kernel_dir), type="bind"))
        try:
            self._container = self._client.containers.run(
                self._image,
                command,
                name=f"oss-agent-python-{os.getpid()}-{secrets.token_hex(4)}",
                init=True,  # PID 1 reaps zombies and forwards SIGINT to the kernel
                network_mode=None if cfg.network else "none",
                mem_limit=cfg.memory,
                memswap_limit=cfg.memory,
                nano_cpus=int(cfg.cpus * 1e9),
                pids_limit=cfg.pids_limit,
                tmpfs={"/tmp": tmp_opts},
                working_dir="/",
                **common,
            )
        except DockerException as exc:
            raise SandboxError(f"Could not start the sandbox container: {exc}") from exc
        self._exited = threading.Event()
        threading.Thread(
            target=self._watch, args=(self._container, self._exited), daemon=True
        ).start()
        return {**info, "ip": str(kernel_dir / "k")}

    def kernel_started(self) -> None:
        """...and once it answers, the folder is read-only to the sandbox for good."""
        if self._kernel_dir is not None:
            os.chmod(self._kernel_dir, 0o750)
        self._holder_thread.join()
        if self._holder_error is not None:
            raise self._holder_error

    def alive(self) -> bool:
        return self._container is not None and not self._exited.is_set()

    def interrupt(self) -> None:
        """SIGINT to the container's init, which forwards it to the kernel."""
        if self.alive():
            # DockerException: it exited meanwhile, which the caller notices next.
            with contextlib.suppress(DockerException):
                self._container.kill(signal="SIGINT")

    def at_process_limit(self) -> bool:
        """Whether tasks (processes and threads, as the pids limit counts them) fill half
        the limit or more: a fork or thread bomb's leftovers, which an interrupt does not
        reach and which would leave the kernel unable to start a thread."""
        try:
            stats = self._container.stats(stream=False, one_shot=True)
        except (DockerException, RequestException):
            return False
        return stats.get("pids_stats", {}).get("current", 0) >= self._config.pids_limit // 2

    def restart(self) -> dict[str, Any]:
        """Replace the kernel container: kills every process of the old one, whatever it
        does. /mnt/data stays (the holder keeps its volume)."""
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

    def save_file(self, extension: str, data: bytes) -> str:
        """Store a rich output (a figure) in /mnt/data as `figure_<n>.<extension>`; return
        its path. Written by Docker inside the sandbox, so a name the code planted as a link
        is replaced, never followed. OSError when it does not fit."""
        listing = self._holder.exec_run(["ls", "-A", DATA_DIR]).output.decode(errors="replace")
        names = set(listing.splitlines())
        n = 1
        while f"figure_{n}.{extension}" in names:
            n += 1
        name = f"figure_{n}.{extension}"
        member = tarfile.TarInfo(name)
        member.size, member.mode, member.mtime = len(data), 0o666, int(time.time())
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            tar.addfile(member, io.BytesIO(data))
        try:
            self._holder.put_archive(DATA_DIR, archive.getvalue())
        except DockerException as exc:
            self._holder.exec_run(["rm", "-f", f"{DATA_DIR}/{name}"])
            if "no space left" in str(exc).lower():
                raise OSError(f"{DATA_DIR} is full (quota {self._config.data_size})") from exc
            raise OSError(f"could not write {DATA_DIR}/{name}: {exc}") from exc
        return f"{DATA_DIR}/{name}"

    def sync_data(self) -> list[str]:
        """Copy /mnt/data's regular files and folders into `data_dir`; return what was left
        out and why (links, special files, sizes past the quota)."""
        api = self._client.api
        exec_id = api.exec_create(
            self._holder.id,
            ["tar", "--sparse", "--numeric-owner", "-C", DATA_DIR, "-cf", "-", "."],
            stdout=True,
            stderr=True,
        )
        errors: list[bytes] = []

        def stdout() -> Any:
            for out, err in api.exec_start(exec_id, stream=True, demux=True):
                if err:
                    errors.append(err)
                if out:
                    yield out

        skipped = hostfiles.extract_files(stdout(), self.data_dir, self._quota)
        return skipped + b"".join(errors).decode(errors="replace").splitlines()

    def close(self) -> None:
        """Remove the kernel container, copy /mnt/data out when the folder is the user's,
        then remove the holder, the volume and the kernel folders. Never raises: what
        fails is logged, and a later process removes leftover containers and volumes."""
        if self._holder_thread.is_alive():
            self._holder_thread.join()
        steps = [self._remove_container]
        if self._config.data_dir is not None and self._holder is not None:
            steps.append(self._sync_on_close)
        steps += [self._remove_data_volume, lambda: shutil.rmtree(self._root, ignore_errors=True)]
        for step in steps:
            try:
                step()
            except (DockerException, RequestException, OSError) as exc:
                log.warning("python sandbox cleanup: %s", exc)
        self._client.close()

    def _sync_on_close(self) -> None:
        skipped = self.sync_data()
        if skipped:
            log.warning(
                "Not copied from /mnt/data to %s: %s", self.data_dir, "; ".join(skipped[:20])
            )

    def _remove_data_volume(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            with contextlib.suppress(NotFound):
                holder.remove(force=True)
        volume, self._volume = self._volume, None
        if volume is not None:
            with contextlib.suppress(NotFound):
                volume.remove(force=True)

    def _remove_container(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(NotFound):
                container.remove(force=True)
        kernel_dir, self._kernel_dir = self._kernel_dir, None
        if kernel_dir is not None:
            shutil.rmtree(kernel_dir, ignore_errors=True)  # fd-based: follows no link

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
