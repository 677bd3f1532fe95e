"""Where tokens come from: the bundled gpt-oss engine and remote engines."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _oss_agent_shadowing  # noqa: F401  (a user's own tools.py etc. must not hide our packages)

# torch's OpenMP runtime (libgomp, shared by the CPU kernels) lets an idle worker spin for
# ~300,000 pauses before it sleeps; between the ~100 parallel regions of a decode step that
# burns the CPU the Python between them needs, and on a busy machine made 2 threads 2-3x
# slower than 1. A short spin still catches the barriers inside a kernel. libgomp reads this
# once, when torch is imported: here, before anything of ours imports torch.
if "torch" not in sys.modules and not {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"} & set(os.environ):
    os.environ["GOMP_SPINCOUNT"] = "1000"
from runtime.config import ConfigError, ModelConfig
from runtime.engine import Engine, GenerationStats

if TYPE_CHECKING:
    import torch

    from runtime.checkpoint import CheckpointError
    from runtime.generate import LocalModel

__all__ = [
    "CheckpointError",
    "ConfigError",
    "Engine",
    "GenerationStats",
    "LocalModel",
    "ModelConfig",
    "load_model",
]


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    compile: bool | None = None,
    max_context: int | None = None,
    expert_cache_gb: float | None = None,
    huge_pages: bool = True,
) -> LocalModel:
    """Load a gpt-oss checkpoint folder (original or Hugging Face layout, detected), or
    "nano": the small demo model bundled with the package (runtime.nano).

    Computes in bf16 unless `dtype` says otherwise. `compile` (default: on CUDA) runs decode
    steps under torch.compile with a static cache of `max_context` positions. On the CPU,
    `expert_cache_gb` keeps recently unpacked experts: default 0 when the C++ kernels build
    (they read packed experts directly), else 2. Also on the CPU, `huge_pages` copies the
    weights read every token into 2 MiB pages where Linux offers them and memory allows:
    decode ~5% faster, at a load-time copy (runtime.huge_pages).
    """
    import torch

    from runtime.checkpoint import Checkpoint
    from runtime.generate import LocalModel
    from runtime.load import build, check_tensors

    device = torch.device(device)
    if str(path) == "nano":
        from runtime.nano.compact import CompactCheckpoint

        checkpoint = CompactCheckpoint()
        dtype = dtype or torch.float32  # tiny: full precision costs nothing
    else:
        # Checked (names, shapes, no data read) before anything slow, such as a first build
        # of the CPU kernels, so a wrong path fails at once.
        checkpoint = Checkpoint(path)
        check_tensors(checkpoint)
    dtype = dtype or torch.bfloat16
    if compile is None:
        compile = device.type == "cuda"
    if max_context is None and compile:
        max_context = 16384
    if expert_cache_gb is None:
        from runtime import kernels

        expert_cache_gb = 2.0 if device.type == "cpu" and not kernels.available() else 0.0
    model = LocalModel(
        build(checkpoint, dtype, device, huge=huge_pages),
        static=device.type == "cuda",
        compile=compile,
        max_context=max_context,
        expert_cache_bytes=int(expert_cache_gb * 2**30),
    )
    if str(path) == "nano":
        # Trained on one right answer per task: it is meant to be run greedily.
        model.default_temperature = 0.0
    return model


def __getattr__(name: str) -> Any:
    """torch loads only when the local engine is used: remote engines and the CLI start fast."""
    if name == "LocalModel":
        from runtime.generate import LocalModel

        return LocalModel
    if name == "CheckpointError":
        from runtime.checkpoint import CheckpointError

        return CheckpointError
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")
