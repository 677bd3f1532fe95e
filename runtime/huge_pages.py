"""Weights the CPU kernels read whole every token, copied into 2 MiB pages.

Streaming a matrix through 4 KiB pages costs a page-table walk per page, and the hardware
prefetchers stop at every page boundary; in a transparent huge page both happen once per
2 MiB. On a 2-core EPYC, one process, alternating calls on the same weights: the MoE
experts of a decode step read ~10% faster, bf16 projections ~11%.

Linux only: where transparent huge pages are off or missing, weights stay where they are.
"""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

import torch

SIZE = 2 << 20  # one huge page
SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def enabled() -> bool:
    """Whether this kernel hands out huge pages to memory that asks for them."""
    try:
        setting = SETTING.read_text()
    except OSError:
        return False
    return "[never]" not in setting and hasattr(mmap, "MADV_HUGEPAGE")


def available_memory() -> int | None:
    """What Linux says new allocations can still get without swapping (MemAvailable), in
    bytes; None where unknown."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def room_for(nbytes: int) -> bool:
    """Whether copies of `nbytes` leave a margin. Copies are anonymous memory, which the
    kernel cannot drop as it drops a file's pages, so a model that barely fits is better
    left as views of its files: slower, but it runs."""
    available = available_memory()
    return available is None or nbytes <= 0.8 * available


def empty(shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialized contiguous tensor in anonymous memory advised for huge pages and
    starting on a 2 MiB boundary (the map is one huge page longer to allow for that)."""
    nbytes = shape.numel() * dtype.itemsize
    region = mmap.mmap(-1, nbytes + SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    region.madvise(mmap.MADV_HUGEPAGE)
    skip = -address(region) % SIZE
    flat = torch.frombuffer(region, dtype=torch.uint8, count=nbytes, offset=skip)
    return flat.view(dtype).view(shape)


def address(region: mmap.mmap) -> int:
    """Where a memory map starts in this process."""
    anchor = ctypes.c_char.from_buffer(region)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor  # a live export would keep the map from ever closing
