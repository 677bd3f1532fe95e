"""Every limit of the python sandbox in one place, so a caller can loosen or tighten any of it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_SIZE = re.compile(r"^\s*([1-9][0-9]*)([kKmMgG]?)\s*$")


def size_in_bytes(size: str) -> int:
    """Bytes of a docker-style size (`256m`, `1g`, `65536`)."""
    number, unit = _SIZE.fullmatch(size).groups()  # type: ignore[union-attr]
    return int(number) << {"": 0, "k": 10, "m": 20, "g": 30}[unit.lower()]


class SandboxConfig(BaseModel):
    """How a python session runs. The defaults are the strict, offline sandbox."""

    model_config = ConfigDict(extra="forbid")  # a misspelt limit must not pass silently

    backend: Literal["docker", "local"] = Field(
        "docker", description="`local` runs the kernel on the host, unsandboxed."
    )
    image: str | None = Field(
        None, description="Image to run; default: the package's Dockerfile, built when missing."
    )
    timeout: float = Field(120.0, gt=0, description="Seconds one execution may run.")
    interrupt_grace: float = Field(
        2.0, gt=0, description="Seconds an interrupted execution gets to stop before a restart."
    )
    startup_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a new kernel.")
    max_output_chars: int = Field(16_000, gt=0, description="Output kept per execution.")
    network: bool = Field(False, description="Give the sandbox network access (opt-in).")
    memory: str = Field("512m", description="Memory limit (docker syntax), swap included.")
    cpus: float = Field(1.0, gt=0, description="CPU quota in cores.")
    pids_limit: int = Field(128, gt=0, description="Processes and threads the sandbox may hold.")
    tmpfs_size: str = Field("64m", description="Size of the in-memory /tmp.")
    tmp_noexec: bool = Field(True, description="Mount /tmp noexec.")
    data_size: str = Field(
        "256m",
        pattern=_SIZE.pattern,
        description="Quota of /mnt/data (in memory, counted in the memory of the kernel that "
        "writes); writing past it fails with 'No space left on device'.",
    )
    data_noexec: bool = Field(
        True, description="Mount /mnt/data noexec: no program the code writes can be run."
    )
    read_only: bool = Field(True, description="Mount the image's filesystem read-only.")
    user: str | None = Field(
        None,
        description="Numeric uid:gid the code runs as; default: 65534 (nobody) in this "
        "user's group (in nobody's group when the host runs as root). Not the host's own uid "
        "(the code would own the kernel's folder), and on a non-root host a group of yours "
        "(the host reaches the kernel's sockets through it).",
    )
    data_dir: Path | None = Field(
        None,
        description="Host folder whose files are copied into /mnt/data at start and that "
        "receives /mnt/data's files on close (files the code deletes stay in it); default: a "
        "fresh folder removed on close.",
    )
