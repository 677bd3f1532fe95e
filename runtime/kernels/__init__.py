"""Fused CPU kernels, compiled once per machine and cached on disk.

On the CPU, eager PyTorch runs far below memory bandwidth for this model: it widens every
MXFP4 and bf16 weight before multiplying, and attention is many small operations. The C++
kernels read packed experts and bf16 weights directly, run a whole MoE layer as one threaded
call and attend over the cache cells in place. Without a compiler (or with
OSS_AGENT_NO_KERNELS=1) callers fall back to the PyTorch path, after one warning.

The build is keyed on everything that changes the binary (the sources, the flags, the torch
and Python versions, the compiler and the CPU's features) and a finished build is imported
directly, so a different ninja on the PATH never triggers a rebuild.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

logger = logging.getLogger(__name__)

NAME = "oss_agent_cpu_kernels"
HERE = Path(__file__).parent
SOURCES = (
    HERE / "mxfp4_cpu.cpp",
    HERE / "dense_cpu.cpp",
    HERE / "norm_rope_cpu.cpp",
    HERE / "block_cpu.cpp",
)
HEADERS = (HERE / "cpu_kernels.h",)
CFLAGS = ("-O3", "-march=native", "-fopenmp")
LDFLAGS = ("-fopenmp",)
# A MoE layer's packed experts, as named in checkpoints, in the order the C++ kernels take
# them: MXFP4 blocks and scales (uint8) and biases of mlp1, then of mlp2.
PACKED = ("mlp1_blocks", "mlp1_scales", "mlp1_bias", "mlp2_blocks", "mlp2_scales", "mlp2_bias")
# What a first build took on a 2-core machine; said before it starts, so nobody waits blind.
BUILD_MINUTES = "1-2"

_module: ModuleType | None = None
_tried = False


def _compiler() -> str:
    """The compiler torch's build uses and its version line (a new compiler, a new binary)."""
    cxx = os.environ.get("CXX", "c++")
    try:
        version = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        version = []
    return f"{cxx} {version[0] if version else 'unknown'}"


def _cpu_features() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[-1].strip()
    import platform

    return platform.processor() or platform.machine()


def build_key() -> str:
    """Hash of everything that changes the compiled binary, and nothing else."""
    parts = [
        *(path.read_bytes() for path in (*SOURCES, *HEADERS)),
        " ".join(CFLAGS + LDFLAGS).encode(),
        torch.__version__.encode(),
        (sysconfig.get_config_var("EXT_SUFFIX") or sys.version).encode(),
        _compiler().encode(),
        _cpu_features().encode(),
    ]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def build_dir() -> Path:
    base = os.environ.get("OSS_AGENT_KERNEL_DIR")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        base = Path(cache) / "oss-agent" / "kernels"
    return Path(base) / build_key()


def _import_built(directory: Path) -> ModuleType | None:
    """The finished build, imported without running ninja again."""
    library = directory / f"{NAME}.so"
    if not library.exists():
        return None
    loader = importlib.machinery.ExtensionFileLoader(NAME, str(library))
    spec = importlib.util.spec_from_file_location(NAME, str(library), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """One build at a time per folder. An flock dies with its process, unlike the `lock`
    file torch's builder leaves behind when a build is killed (which would make every later
    build wait forever): holding ours, any such file is stale and is removed."""
    with open(directory / "build.flock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (directory / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(directory: Path) -> ModuleType:
    from torch.utils.cpp_extension import load

    if shutil.which(os.environ.get("CXX", "c++")) is None:
        raise RuntimeError("no C++ compiler found (install g++ or set CXX)")
    notice = (
        f"oss-agent: compiling the CPU kernels ({', '.join(p.name for p in SOURCES)}) into "
        f"{directory}; this takes about {BUILD_MINUTES} minutes, once per machine"
    )
    print(notice, file=sys.stderr, flush=True)
    logger.info(notice)
    start = time.perf_counter()
    module = load(
        name=NAME,
        sources=[str(path) for path in SOURCES],
        extra_cflags=list(CFLAGS),
        extra_ldflags=list(LDFLAGS),
        build_directory=str(directory),
        verbose=False,
    )
    logger.info("CPU kernels built in %.0f s", time.perf_counter() - start)
    return module


def _load() -> ModuleType | None:
    if os.environ.get("OSS_AGENT_NO_KERNELS") == "1":
        return None
    try:
        directory = build_dir()
        module = _import_built(directory)
        if module is None:
            directory.mkdir(parents=True, exist_ok=True)
            with _build_lock(directory):
                module = _import_built(directory) or _build(directory)
        return module
    except Exception as error:  # no compiler, no ninja, headers missing: fall back
        warnings.warn(
            f"CPU kernels unavailable, using the slower PyTorch path: {error}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def available() -> bool:
    """Whether the fused kernels can be used; builds them on the first call."""
    global _module, _tried
    if not _tried:
        _tried = True
        _module = _load()
    return _module is not None


def serve(x: torch.Tensor) -> bool:
    """Whether the kernels take `x`: CPU inference only (training and torch.compile graphs
    use PyTorch ops, which autograd and the compiler understand)."""
    return (
        x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
        and available()
    )


def _kernels() -> ModuleType:
    assert _module is not None, "a CPU kernel was called without available()"
    return _module


def mxfp4_linear(
    x: torch.Tensor, blocks: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """x [T, K] @ W.T + bias with W packed as MXFP4 (blocks [R, K/32, 16], scales [R, K/32]):
    fp32 arithmetic, result in x's dtype. Call only when `available()`."""
    return _kernels().mxfp4_linear(x, blocks, scales, bias)


def moe_experts(
    x: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
    packed: dict[str, torch.Tensor],
    limit: float,
    exact: bool,
) -> torch.Tensor:
    """One MoE layer's experts: x [T, H] and each token's k experts and router weights
    [T, k] -> [T, H] fp32, from `packed` (mlp1/mlp2 blocks, scales and biases of all
    experts). `exact` multiplies fp32 activations; otherwise they are quantized to int8 per
    block of 32 (integer dot products, ~4x less work). Call only when `available()`."""
    return _kernels().moe_experts(x, experts, weights, *_packed(packed), limit, exact)


def linear_bf16(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [T, K] @ weight.T + bias with bf16 weights, accumulated and returned in fp32."""
    return _kernels().linear_bf16(x, weight, bias)


def attention(
    q: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    key_pos: torch.Tensor,
    positions: torch.Tensor,
    sinks: torch.Tensor,
    window: int | None,
) -> torch.Tensor:
    """Attention with sinks, in fp32, of q [T, H, d] at `positions` over the cache cells
    keys/values [S, KV, d] at key_pos [S] (-1: empty) -> [T, H * d]; `window` limits how far
    back a query sees."""
    return _kernels().attention(q, keys, values, key_pos, positions, sinks, window or 0)


def rms_norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    """scale * x / sqrt(mean(x^2) + eps) per row of fp32 x [T, C]."""
    return _kernels().rms_norm(x, scale, eps)


def rope_(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int, head_dim: int) -> None:
    """Half-split RoPE in place on the first `heads` heads of fp32 x [T, n * head_dim], with
    cos/sin [T, head_dim / 2] (scaled) for each row's position."""
    _kernels().rope_(x, cos, sin, heads, head_dim)


def attention_weights(
    norm_scale: torch.Tensor,
    eps: float,
    qkv: tuple[torch.Tensor, torch.Tensor | None],
    shape: tuple[int, int, int],
    sinks: torch.Tensor,
    window: int | None,
    out: tuple[torch.Tensor, torch.Tensor | None],
) -> object:
    """A block's attention half as the kernels take it: norm, qkv projection (weight, bias),
    `shape` (heads, kv_heads, head_dim), sinks, window, output projection (weight, bias).
    It holds the tensors themselves, not copies."""
    return _kernels().AttentionWeights(norm_scale, eps, *qkv, *shape, sinks, window or 0, *out)


def moe_weights(
    norm_scale: torch.Tensor,
    eps: float,
    gate: tuple[torch.Tensor, torch.Tensor | None],
    top_k: int,
    packed: dict[str, torch.Tensor],
    limit: float,
    exact: bool,
) -> object:
    """A block's MoE half as the kernels take it: norm, the fp32 router (weight, bias), top-k,
    the packed experts (see `moe_experts`). It holds the tensors themselves, not copies."""
    return _kernels().MoeWeights(norm_scale, eps, *gate, top_k, *_packed(packed), limit, exact)


LayerCacheTensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]


def attention_block(
    x: torch.Tensor,
    weights: object,
    rope: tuple[torch.Tensor, torch.Tensor],
    cache: LayerCacheTensors,
    positions: torch.Tensor,
) -> torch.Tensor:
    """x + the attention half of a block (`attention_weights`) for fp32 rows x [T, hidden] at
    `positions`, in one call: norm, qkv projection, RoPE (cos, sin), the new keys and values
    stored in the cache (k, v, pos, ring) first, attention over it, output projection.
    Storing first needs T == 1 for a ring."""
    return _kernels().attention_block(x, weights, *rope, *cache, positions)


def moe_block(x: torch.Tensor, weights: object) -> torch.Tensor:
    """x + the MoE half of a block (`moe_weights`) for fp32 rows x [T, hidden], in one call:
    norm, the fp32 router, top-k and softmax, then `moe_experts`."""
    return _kernels().moe_block(x, weights)


def decode_blocks(
    x: torch.Tensor,
    attention: list[object],
    moe: list[object],
    rope: tuple[torch.Tensor, torch.Tensor],
    caches: list[LayerCacheTensors],
    positions: torch.Tensor,
) -> torch.Tensor:
    """One new token x [1, hidden] through every block in one call: per block its
    `attention_weights`, `moe_weights` and cache, as `attention_block` and `moe_block` take
    them."""
    flat = [tensor for k, v, pos, _ in caches for tensor in (k, v, pos)]
    rings = [ring for *_, ring in caches]
    return _kernels().decode_blocks(x, attention, moe, *rope, flat, rings, positions)


def _packed(packed: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The experts' packed tensors in the order the C++ signatures take them."""
    return tuple(packed[name] for name in PACKED)
