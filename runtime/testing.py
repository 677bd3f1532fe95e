"""Random gpt-oss checkpoints in the real on-disk formats, for tests and benchmarks.

The same seed gives the same model in both layouts. Values are scaled so activations stay
near unit size, which keeps the routing and the logits informative in tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from runtime.config import PRESETS, ModelConfig
from runtime.load import tensor_shapes
from runtime.save import LAYOUTS, to_layout, write_config

__all__ = ["LAYOUTS", "write_random_checkpoint"]
# Above this many bytes a checkpoint is written one shard per block, as large ones ship.
SHARD_BYTES = 1 << 30


def _random_tensor(name: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    def normal(std: float) -> torch.Tensor:
        return (torch.randn(shape, generator=generator) * std).to(torch.bfloat16)

    if name.endswith(".blocks"):
        return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    if name.endswith(".scales"):
        # E2M1 values have an RMS near 2.6: aim for weights of size ~ 1/sqrt(fan_in).
        fan_in = shape[-1] * 32
        center = 127 + round(math.log2(1 / (2.6 * math.sqrt(fan_in))))
        jitter = torch.randint(-1, 2, shape, generator=generator)
        return (center + jitter).to(torch.uint8)
    if name.endswith("norm.scale"):
        return (1 + normal(0.1).float()).to(torch.bfloat16).float()  # fp32, bf16-exact
    if name.endswith("sinks"):
        return normal(1.0)
    if name == "embedding.weight":
        return normal(1.0)
    if name.endswith("bias"):
        return normal(0.1)
    return normal(1 / math.sqrt(shape[-1]))


def _blocks_of(config: ModelConfig) -> list[list[str]]:
    """Tensor names grouped by where they are written: the top-level ones, then per block."""
    names = list(tensor_shapes(config))
    top = [name for name in names if not name.startswith("block.")]
    per_block = [
        [name for name in names if name.startswith(f"block.{n}.")]
        for n in range(config.num_hidden_layers)
    ]
    return [top, *per_block]


def write_random_checkpoint(
    path: str | Path,
    config: ModelConfig | str = "tiny",
    seed: int = 0,
    layout: str = "original",
) -> Path:
    """Write config.json and safetensors with random weights: MXFP4 (uint8) experts, bf16
    elsewhere, fp32 norm scales in the original layout. Large models go one shard per block
    (with model.safetensors.index.json in the HF layout), so memory stays one block's worth."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(config, str):
        config = PRESETS[config]
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shapes = tensor_shapes(config)
    groups = _blocks_of(config)
    sharded = _checkpoint_bytes(shapes) > SHARD_BYTES
    weight_map: dict[str, str] = {}
    pending: dict[str, torch.Tensor] = {}
    for index, names in enumerate(groups):
        generator = torch.Generator().manual_seed(seed * 100_003 + index)
        for name in names:
            tensor = _random_tensor(name, shapes[name], generator)
            pending.update(to_layout(name, tensor, config, layout))
        if sharded or index == len(groups) - 1:
            file = f"model-{index:05d}-of-{len(groups):05d}.safetensors" if sharded else None
            file = file or "model.safetensors"
            save_file(pending, str(path / file), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(pending, file))
            pending = {}
    write_config(path, config, layout)
    if sharded and layout == "hf":
        index_json = {"metadata": {}, "weight_map": weight_map}
        (path / "model.safetensors.index.json").write_text(json.dumps(index_json, indent=2))
    return path


def _checkpoint_bytes(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(
        math.prod(shape) * (1 if ".blocks" in n or ".scales" in n else 2)
        for n, shape in shapes.items()
    )
