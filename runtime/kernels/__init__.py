"""Fused CPU kernels, compiled on first use and cached on disk.

Decode on the CPU is bound by unpacking MXFP4 experts in eager PyTorch; the C++ kernel reads
the packed weights directly. Without a compiler (or with OSS_AGENT_NO_KERNELS=1) callers fall
back to the PyTorch path, after one warning.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path
from types import ModuleType

import torch

SOURCE = Path(__file__).with_name("mxfp4_cpu.cpp")
_module: ModuleType | None = None
_tried = False


def build_dir() -> Path:
    """Per torch version and CPU: the build uses -march=native and torch's headers."""
    base = os.environ.get("OSS_AGENT_KERNEL_DIR")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        base = Path(cache) / "oss-agent" / "kernels"
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        flags = [line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")]
        cpu = flags[0] if flags else cpu
    tag = hashlib.sha256(f"{torch.__version__} {cpu}".encode()).hexdigest()[:12]
    return Path(base) / tag


def _load() -> ModuleType | None:
    if os.environ.get("OSS_AGENT_NO_KERNELS") == "1":
        return None
    try:
        from torch.utils.cpp_extension import load

        directory = build_dir()
        directory.mkdir(parents=True, exist_ok=True)
        return load(
            name="oss_agent_mxfp4_cpu",
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-march=native", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            build_directory=str(directory),
            verbose=False,
        )
    except Exception as error:  # no compiler, no ninja, headers missing: fall back
        warnings.warn(
            f"MXFP4 CPU kernel unavailable, using the slower PyTorch path: {error}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def available() -> bool:
    """Whether the fused kernel can be used; builds it on the first call."""
    global _module, _tried
    if not _tried:
        _tried = True
        _module = _load()
    return _module is not None


def mxfp4_linear(
    x: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """x [T, K] @ W.T + bias with W packed as MXFP4 (blocks [R, K/32, 16], scales [R, K/32]):
    fp32 arithmetic, result in x's dtype. Call only when `available()`."""
    assert _module is not None, "mxfp4_linear called without available()"
    return _module.mxfp4_linear(x, blocks, scales, bias)
