"""Host-side writes of what the sandbox produced: never through a link, never past a budget.

The sandboxed code chooses every name, type and size in what it hands back, and (for the
local backend) can change the folder while the host writes in it. So every write here is made
relative to a directory file descriptor opened with O_NOFOLLOW, creates its file with O_EXCL
(then renames it into place, which replaces a name rather than writing through it), and
takes only regular files and directories: links, devices and fifos are never created.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# Deeper trees are not copied out: Python's own tree walks (shutil.rmtree) recurse per level.
MAX_DEPTH = 64
_SESSION_FOLDER = re.compile(r"oss-agent-(?:data|kernel)-(\d+)-")


def new_session_folder(kind: str) -> Path:
    """A fresh private folder `oss-agent-{kind}-{pid}-XXXXXXXX` in the temporary directory;
    the pid lets a later process remove it if this one dies without doing so."""
    return Path(tempfile.mkdtemp(prefix=f"oss-agent-{kind}-{os.getpid()}-"))


def remove_stale_folders(alive: Callable[[int], bool]) -> list[str]:
    """Remove this user's session folders whose owning process is gone; return their paths."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob("oss-agent-*"):
        match = _SESSION_FOLDER.match(path.name)
        if match is None or alive(int(match.group(1))):
            continue
        try:
            info = path.lstat()
        except FileNotFoundError:  # another process removed it first
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def write_new_file(folder: Path, stem: str, extension: str, data: bytes) -> str:
    """Write `data` to the first free `{stem}_{n}.{extension}` in `folder`; return its name.
    A name that exists in any form (a file, a planted link) is skipped, never opened."""
    dir_fd = os.open(folder, _DIR_FLAGS)
    try:
        n = 1
        while True:
            name = f"{stem}_{n}.{extension}"
            try:
                fd = os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=dir_fd)
            except FileExistsError:
                n += 1
                continue
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            return name
    finally:
        os.close(dir_fd)


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterable of byte chunks (a Docker exec's output)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _parts(name: str) -> tuple[str, ...] | None:
    """The path components of a member name, or None if it could leave the folder."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if name.startswith("/") or ".." in parts:
        return None
    return parts


class _Folder:
    """Directory fds under one destination, opened component by component without
    following links; a component that exists as anything but a directory is refused.
    Only the fds of the path last opened stay open (a tar lists a tree depth first), so
    no tree is too large or too deep for the fds a process may hold."""

    def __init__(self, root: Path) -> None:
        self._fds: dict[tuple[str, ...], int] = {(): os.open(root, _DIR_FLAGS)}

    def open(self, parts: tuple[str, ...]) -> int | None:
        for held in [p for p in self._fds if p != parts[: len(p)]]:
            os.close(self._fds.pop(held))
        return self._open(parts)

    def _open(self, parts: tuple[str, ...]) -> int | None:
        if parts in self._fds:
            return self._fds[parts]
        parent = self._open(parts[:-1])
        if parent is None:
            return None
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(parts[-1], 0o777, dir_fd=parent)
            fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        except OSError:  # a link or a file of that name (not ours to go through), too deep...
            return None
        self._fds[parts] = fd
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)


def _replace_file(dir_fd: int, name: str, source: BinaryIO, member: tarfile.TarInfo) -> None:
    """Write `source` under a fresh temporary name, then rename it over `name` (unless
    `name` is something other than a regular file, which is left alone)."""
    try:
        existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise IsADirectoryError(f"{name} exists on the host and is not a regular file")
    temporary = f".{name[:200]}.{secrets.token_hex(4)}.part"
    mode = 0o777 if member.mode & 0o100 else 0o666
    fd = os.open(temporary, _NEW_FILE_FLAGS, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            shutil.copyfileobj(source, file)
            os.utime(file.fileno(), (member.mtime, member.mtime))
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def extract_files(chunks: Iterable[bytes], destination: Path, budget: int) -> list[str]:
    """Copy the regular files and directories of a tar stream into `destination`.

    At most `budget` bytes of file content are written (a sparse file can claim far more
    than the space it used in the sandbox). Returns what was not copied, each with why;
    files already in `destination` that the archive does not hold are left alone.
    """
    skipped: list[str] = []
    used = 0
    folder = _Folder(destination)
    try:
        with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as archive:
            for member in archive:
                parts = _parts(member.name)
                if not parts:
                    if parts is None:
                        skipped.append(f"{member.name} (outside the folder)")
                    continue
                if len(parts) > MAX_DEPTH:
                    skipped.append(f"{member.name} (deeper than {MAX_DEPTH} folders)")
                    continue
                if member.isdir():
                    if folder.open(parts) is None:
                        skipped.append(f"{member.name} (a non-folder of that name on the host)")
                    continue
                if not member.isreg():
                    skipped.append(f"{member.name} (not a regular file)")
                    continue
                if used + member.size > budget:
                    skipped.append(f"{member.name} ({member.size} bytes, past the quota)")
                    continue
                parent = folder.open(parts[:-1])
                source = archive.extractfile(member)
                if parent is None or source is None:
                    skipped.append(f"{member.name} (its folder cannot be made on the host)")
                    continue
                try:
                    _replace_file(parent, parts[-1], source, member)
                except OSError as exc:
                    skipped.append(f"{member.name} ({exc.strerror or exc})")
                    continue
                used += member.size
    finally:
        folder.close()
    return skipped


def archive_folder(folder: Path, budget: int) -> BinaryIO:
    """A tar of the regular files and directories under `folder` (links are left out), for
    copying a user's folder into the sandbox. Files and folders are writable by anyone
    there, since Docker gives what it copies in to root. Raises ValueError past `budget`."""
    archive_file = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 (returned)
    try:
        _add_folder(archive_file, folder, budget)
    except BaseException:
        archive_file.close()
        raise
    archive_file.seek(0)
    return archive_file


def _add_folder(archive_file: BinaryIO, folder: Path, budget: int) -> None:
    total = 0
    with tarfile.open(fileobj=archive_file, mode="w") as archive:
        for root, dirs, files in os.walk(folder):
            base = Path(root)
            for name in [*dirs, *files]:
                path = base / name
                info = os.lstat(path)
                if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
                    continue
                member = archive.gettarinfo(path, arcname=str(path.relative_to(folder)))
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                member.mode = 0o777 if member.isdir() or info.st_mode & 0o100 else 0o666
                if member.isdir():
                    archive.addfile(member)
                    continue
                total += member.size
                if total > budget:
                    raise ValueError(f"{folder} holds more than {budget} bytes")
                with open(path, "rb") as file:
                    archive.addfile(member, file)
