"""Write gpt-oss checkpoints in either on-disk layout from tensors named as the original one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from runtime.config import ModelConfig
from runtime.load import hf_name

LAYOUTS = ("original", "hf")


def to_layout(
    name: str, tensor: torch.Tensor, config: ModelConfig, layout: str, norms_bf16: bool = True
) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs as `layout` stores one tensor of the original layout: transformers
    keeps q, k and v apart and (as published) its norm scales in bf16; `norms_bf16=False`
    keeps them fp32, for trained scales that bf16 would round."""
    if layout == "original":
        return [(name, tensor)]
    if name.endswith("norm.scale") and norms_bf16:
        tensor = tensor.to(torch.bfloat16)
    if ".attn.qkv." in name:
        n, kind = name.split(".")[1], name.rsplit(".", 1)[1]
        d = config.head_dim
        sizes = [config.num_attention_heads * d, config.num_key_value_heads * d]
        sizes.append(config.num_key_value_heads * d)
        parts = tensor.split(sizes)
        return [
            (f"model.layers.{n}.self_attn.{proj}_proj.{kind}", part.contiguous())
            for proj, part in zip("qkv", parts, strict=True)
        ]
    return [(hf_name(name), tensor)]


def write_config(path: Path, config: ModelConfig, layout: str) -> None:
    raw = config.to_original() if layout == "original" else config.to_hf()
    (path / "config.json").write_text(json.dumps(raw, indent=2))


def save_checkpoint(
    path: str | Path, config: ModelConfig, tensors: Mapping[str, torch.Tensor], layout: str
) -> Path:
    """One model.safetensors plus config.json. `tensors` are in their stored dtypes (uint8
    MXFP4 experts, bf16, fp32 norm scales, kept fp32 in either layout) under the original
    layout's names."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    stored: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        stored.update(to_layout(name, tensor.contiguous(), config, layout, norms_bf16=False))
    save_file(stored, str(path / "model.safetensors"), metadata={"format": "pt"})
    write_config(path, config, layout)
    return path
