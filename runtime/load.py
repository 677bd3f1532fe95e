"""Build the Transformer from a checkpoint folder of either layout.

Names and shapes are checked tensor by tensor; experts stay packed uint8 (copied packed to
a GPU), everything else is cast to the compute dtype. With `huge_pages`, the weights the CPU
reads whole every token (projections, experts, unembedding) are copied into huge pages; the
rest stay views of the file.
"""

from __future__ import annotations

import logging

import torch

from runtime import huge_pages
from runtime.checkpoint import Checkpoint, CheckpointError
from runtime.config import ModelConfig
from runtime.model import Attention, Block, RMSNorm, Transformer
from runtime.moe import MoE

logger = logging.getLogger(__name__)

# Our names (the original layout's) -> transformers' names, per block.
HF_BLOCK_NAMES = {
    "attn.norm.scale": "input_layernorm.weight",
    "attn.sinks": "self_attn.sinks",
    "attn.out.weight": "self_attn.o_proj.weight",
    "attn.out.bias": "self_attn.o_proj.bias",
    "mlp.norm.scale": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.router.weight",
    "mlp.gate.bias": "mlp.router.bias",
    "mlp.mlp1_weight.blocks": "mlp.experts.gate_up_proj_blocks",
    "mlp.mlp1_weight.scales": "mlp.experts.gate_up_proj_scales",
    "mlp.mlp1_bias": "mlp.experts.gate_up_proj_bias",
    "mlp.mlp2_weight.blocks": "mlp.experts.down_proj_blocks",
    "mlp.mlp2_weight.scales": "mlp.experts.down_proj_scales",
    "mlp.mlp2_bias": "mlp.experts.down_proj_bias",
}
HF_TOP_NAMES = {
    "embedding.weight": "model.embed_tokens.weight",
    "norm.scale": "model.norm.weight",
    "unembedding.weight": "lm_head.weight",
}


def tensor_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of the original layout and its shape."""
    h, i, e = config.hidden_size, config.intermediate_size, config.num_experts
    shapes: dict[str, tuple[int, ...]] = {
        "embedding.weight": (config.vocab_size, h),
        "norm.scale": (h,),
        "unembedding.weight": (config.vocab_size, h),
    }
    for n in range(config.num_hidden_layers):
        per_block = {
            "attn.norm.scale": (h,),
            "attn.qkv.weight": (config.qkv_dim, h),
            "attn.qkv.bias": (config.qkv_dim,),
            "attn.sinks": (config.num_attention_heads,),
            "attn.out.weight": (h, config.num_attention_heads * config.head_dim),
            "attn.out.bias": (h,),
            "mlp.norm.scale": (h,),
            "mlp.gate.weight": (e, h),
            "mlp.gate.bias": (e,),
            "mlp.mlp1_weight.blocks": (e, 2 * i, h // 32, 16),
            "mlp.mlp1_weight.scales": (e, 2 * i, h // 32),
            "mlp.mlp1_bias": (e, 2 * i),
            "mlp.mlp2_weight.blocks": (e, h, i // 32, 16),
            "mlp.mlp2_weight.scales": (e, h, i // 32),
            "mlp.mlp2_bias": (e, h),
        }
        shapes.update({f"block.{n}.{name}": shape for name, shape in per_block.items()})
    return shapes


def hf_name(name: str) -> str:
    if name in HF_TOP_NAMES:
        return HF_TOP_NAMES[name]
    _, n, rest = name.split(".", 2)
    return f"model.layers.{n}.{HF_BLOCK_NAMES[rest]}"


def check_tensors(checkpoint: Checkpoint) -> None:
    """Check every tensor the model needs is present with its shape, reading no data."""
    config = checkpoint.config
    for name, shape in tensor_shapes(config).items():
        if checkpoint.layout == "original":
            checkpoint.get(name, shape)
        elif ".attn.qkv." in name:
            _Reader(checkpoint, torch.bfloat16, torch.device("meta")).hf_qkv_parts(name)
        else:
            checkpoint.get(hf_name(name), shape)


class _Reader:
    """Reads tensors by our names from either layout, checking shapes."""

    def __init__(
        self, checkpoint: Checkpoint, dtype: torch.dtype, device: torch.device, huge: bool = False
    ):
        self.checkpoint, self.dtype, self.device, self.huge = checkpoint, dtype, device, huge
        self.shapes = tensor_shapes(checkpoint.config)

    def raw(self, name: str) -> torch.Tensor:
        if self.checkpoint.layout == "original":
            return self.checkpoint.get(name, self.shapes[name])
        if name.endswith("attn.qkv.weight") or name.endswith("attn.qkv.bias"):
            return self._hf_qkv(name)
        return self.checkpoint.get(hf_name(name), self.shapes[name])

    def _hf_qkv(self, name: str) -> torch.Tensor:
        parts = self.hf_qkv_parts(name)
        fused = torch.cat(parts)
        for part in parts:
            self.checkpoint.release(part)  # copied into `fused`
        return fused

    def hf_qkv_parts(self, name: str) -> list[torch.Tensor]:
        config = self.checkpoint.config
        n, kind = name.split(".")[1], name.rsplit(".", 1)[1]
        h = (config.hidden_size,) if kind == "weight" else ()
        heads = config.num_attention_heads, config.num_key_value_heads, config.num_key_value_heads
        parts = zip("qkv", heads, strict=True)
        return [
            self.checkpoint.get(
                f"model.layers.{n}.self_attn.{proj}_proj.{kind}", (count * config.head_dim, *h)
            )
            for proj, count in parts
        ]

    def __call__(self, name: str) -> torch.Tensor:
        """A tensor in the compute dtype on the device (a view of the file when possible)."""
        return self.raw(name).to(device=self.device, dtype=self.dtype)

    def packed(self, name: str) -> torch.Tensor:
        tensor = self.raw(name)
        if tensor.dtype != torch.uint8:
            raise CheckpointError(f"{self.checkpoint.path}: '{name}' must be uint8 (MXFP4)")
        return self.streamed(tensor.to(self.device))

    def streamed(self, tensor: torch.Tensor) -> torch.Tensor:
        """A weight the kernels read whole every token: on the CPU, moved into huge pages
        (see `runtime.huge_pages`), the file's pages under it given back."""
        if not self.huge or tensor.nbytes < huge_pages.SIZE:
            return tensor
        moved = huge_pages.empty(tensor.shape, tensor.dtype)
        # In slices, each one's file pages given back once copied: the process never holds
        # a whole tensor twice (the unembedding is 1.16 GB on 20b).
        source, target = tensor.contiguous().view(-1), moved.view(-1)
        step = huge_pages.SIZE * 32 // tensor.element_size()
        for start in range(0, source.numel(), step):
            target[start : start + step].copy_(source[start : start + step])
            if isinstance(self.checkpoint, Checkpoint):
                self.checkpoint.release(source[start : start + step])
        return moved


def build(
    checkpoint: Checkpoint, dtype: torch.dtype, device: torch.device, *, huge: bool = False
) -> Transformer:
    """The model; with `huge`, on the CPU, its streamed weights copied into huge pages where
    Linux offers them and the checkpoint's files fit in memory with a margin (else they stay
    views, and a log line says why)."""
    config = checkpoint.config
    huge = huge and device.type == "cpu" and huge_pages.enabled()
    if huge and isinstance(checkpoint, Checkpoint):
        size = sum(file.stat().st_size for file in checkpoint.files)
        if not huge_pages.room_for(size):
            logger.info(
                "weights stay views of %s: copying %.1f GB into huge pages would leave too "
                "little of the %.1f GB of memory available",
                checkpoint.path,
                size / 1e9,
                (huge_pages.available_memory() or 0) / 1e9,
            )
            huge = False
    read = _Reader(checkpoint, dtype, device, huge)

    def linear(prefix: str, dtype: torch.dtype = dtype) -> torch.nn.Linear:
        layer = torch.nn.Linear(1, 1, device="meta")
        for part in ("weight", "bias"):
            tensor = read.raw(f"{prefix}.{part}").to(device=device, dtype=dtype)
            if part == "weight":
                tensor = read.streamed(tensor)
            setattr(layer, part, torch.nn.Parameter(tensor, requires_grad=False))
        return layer

    def norm(name: str) -> RMSNorm:
        return RMSNorm(read.raw(name).to(device), config.rms_norm_eps)

    blocks = []
    for n in range(config.num_hidden_layers):
        p = f"block.{n}"
        attn = Attention(
            config,
            n,
            norm(f"{p}.attn.norm.scale"),
            linear(f"{p}.attn.qkv"),
            linear(f"{p}.attn.out"),
            read(f"{p}.attn.sinks"),
        )
        experts = {
            "mlp1_blocks": read.packed(f"{p}.mlp.mlp1_weight.blocks"),
            "mlp1_scales": read.packed(f"{p}.mlp.mlp1_weight.scales"),
            "mlp1_bias": read(f"{p}.mlp.mlp1_bias"),
            "mlp2_blocks": read.packed(f"{p}.mlp.mlp2_weight.blocks"),
            "mlp2_scales": read.packed(f"{p}.mlp.mlp2_weight.scales"),
            "mlp2_bias": read(f"{p}.mlp.mlp2_bias"),
        }
        mlp = MoE(
            n,
            norm(f"{p}.mlp.norm.scale"),
            linear(f"{p}.mlp.gate", torch.float32),  # the router runs in fp32
            experts,
            config.experts_per_token,
            config.swiglu_limit,
        )
        blocks.append(Block(attn, mlp))
    return Transformer(
        config,
        read("embedding.weight"),
        blocks,
        norm("norm.scale"),
        read.streamed(read("unembedding.weight")),
    )
