"""Model hyperparameters, read from either checkpoint layout's config.json, and named presets."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config.json that cannot describe a gpt-oss model."""


# The keys the "original" layout's config.json holds (gpt-oss-model.md).
ORIGINAL_KEYS = (
    "num_hidden_layers",
    "num_experts",
    "experts_per_token",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "swiglu_limit",
    "head_dim",
    "num_attention_heads",
    "num_key_value_heads",
    "sliding_window",
    "initial_context_length",
    "rope_theta",
    "rope_scaling_factor",
    "rope_ntk_alpha",
    "rope_ntk_beta",
)


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and constants of one gpt-oss model; defaults are gpt-oss-20b's."""

    num_hidden_layers: int = 24
    num_experts: int = 32
    experts_per_token: int = 4
    vocab_size: int = 201088
    hidden_size: int = 2880
    intermediate_size: int = 2880
    swiglu_limit: float = 7.0
    head_dim: int = 64
    num_attention_heads: int = 64
    num_key_value_heads: int = 8
    sliding_window: int = 128
    initial_context_length: int = 4096
    rope_theta: float = 150000.0
    rope_scaling_factor: float = 32.0
    rope_ntk_alpha: float = 1.0
    rope_ntk_beta: float = 32.0
    rms_norm_eps: float = 1e-5
    # transformers floors/ceils the YaRN ramp bounds when this is true; gpt-oss ships false.
    rope_truncate: bool = False

    def __post_init__(self) -> None:
        positive = [f.name for f in dataclasses.fields(self) if f.type in ("int", "float")]
        for name in positive:
            if name != "rope_ntk_alpha" and not getattr(self, name) > 0:
                raise ConfigError(f"config: {name} must be positive, got {getattr(self, name)!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"config: num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        if self.experts_per_token > self.num_experts:
            raise ConfigError(
                f"config: experts_per_token ({self.experts_per_token}) exceeds "
                f"num_experts ({self.num_experts})"
            )
        for name in ("hidden_size", "intermediate_size"):
            if getattr(self, name) % 32:
                raise ConfigError(f"config: {name} must be a multiple of 32 (MXFP4 block size)")
        if self.head_dim % 2:
            raise ConfigError("config: head_dim must be even (RoPE rotates halves)")

    @property
    def max_positions(self) -> int:
        """Context length YaRN extends to (131,072 for gpt-oss)."""
        return int(self.initial_context_length * self.rope_scaling_factor)

    def is_sliding(self, layer: int) -> bool:
        """Even layers attend within the sliding window, odd layers to the full context."""
        return layer % 2 == 0

    @property
    def qkv_dim(self) -> int:
        return (self.num_attention_heads + 2 * self.num_key_value_heads) * self.head_dim

    def param_counts(self) -> dict[str, int]:
        """Parameter counts: `experts` are the MXFP4 weights, `dense` all the rest (bf16);
        `active` is what one token reads (the embedding contributes one row)."""
        h, i, e = self.hidden_size, self.intermediate_size, self.num_experts
        attn = self.qkv_dim * (h + 1) + self.num_attention_heads * self.head_dim * h + 2 * h
        attn += self.num_attention_heads
        expert_weights = 3 * i * h
        per_layer_dense = attn + e * (h + 1) + e * (2 * i + h)
        embeddings = 2 * self.vocab_size * h
        dense = self.num_hidden_layers * per_layer_dense + embeddings + h
        experts = self.num_hidden_layers * e * expert_weights
        active = dense - self.vocab_size * h
        active += self.num_hidden_layers * self.experts_per_token * expert_weights
        return {"dense": dense, "experts": experts, "active": active}

    def to_original(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ORIGINAL_KEYS}

    def to_hf(self) -> dict[str, Any]:
        """The transformers GptOssConfig form (as in openai/gpt-oss-20b's config.json)."""
        return {
            "architectures": ["GptOssForCausalLM"],
            "model_type": "gpt_oss",
            "num_hidden_layers": self.num_hidden_layers,
            "num_local_experts": self.num_experts,
            "num_experts_per_tok": self.experts_per_token,
            "experts_per_token": self.experts_per_token,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "swiglu_limit": self.swiglu_limit,
            "head_dim": self.head_dim,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "sliding_window": self.sliding_window,
            "layer_types": [
                "sliding_attention" if self.is_sliding(n) else "full_attention"
                for n in range(self.num_hidden_layers)
            ],
            "initial_context_length": self.initial_context_length,
            "max_position_embeddings": self.max_positions,
            "rope_theta": self.rope_theta,
            "rope_scaling": {
                "rope_type": "yarn",
                "factor": self.rope_scaling_factor,
                "beta_fast": self.rope_ntk_beta,
                "beta_slow": self.rope_ntk_alpha,
                "original_max_position_embeddings": self.initial_context_length,
                "truncate": self.rope_truncate,
            },
            "rms_norm_eps": self.rms_norm_eps,
            "attention_bias": True,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
            "quantization_config": {
                "quant_method": "mxfp4",
                "modules_to_not_convert": [
                    "model.layers.*.self_attn",
                    "model.layers.*.mlp.router",
                    "model.embed_tokens",
                    "lm_head",
                ],
            },
        }

    @classmethod
    def from_original(cls, raw: dict[str, Any]) -> ModelConfig:
        missing = [key for key in ORIGINAL_KEYS if key not in raw]
        if missing:
            raise ConfigError(f"config: missing keys {missing}")
        return cls(**{key: raw[key] for key in ORIGINAL_KEYS})

    @classmethod
    def from_hf(cls, raw: dict[str, Any]) -> ModelConfig:
        # transformers 4.x writes rope_scaling + rope_theta; 5.x folds both into rope_parameters.
        rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
        theta = rope.get("rope_theta", raw.get("rope_theta"))
        if rope.get("rope_type", rope.get("type")) != "yarn" or theta is None:
            raise ConfigError(f"config: expected YaRN rope parameters, got {rope!r}")
        required = [
            "num_hidden_layers",
            "num_local_experts",
            "num_experts_per_tok",
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "head_dim",
            "num_attention_heads",
            "num_key_value_heads",
            "sliding_window",
        ]
        missing = [key for key in required if key not in raw]
        if missing:
            raise ConfigError(f"config: missing keys {missing}")
        config = cls(
            num_hidden_layers=raw["num_hidden_layers"],
            num_experts=raw["num_local_experts"],
            experts_per_token=raw["num_experts_per_tok"],
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            intermediate_size=raw["intermediate_size"],
            swiglu_limit=raw.get("swiglu_limit", 7.0),
            head_dim=raw["head_dim"],
            num_attention_heads=raw["num_attention_heads"],
            num_key_value_heads=raw["num_key_value_heads"],
            sliding_window=raw["sliding_window"],
            initial_context_length=rope.get("original_max_position_embeddings", 4096),
            rope_theta=theta,
            rope_scaling_factor=rope.get("factor", 32.0),
            rope_ntk_alpha=rope.get("beta_slow", 1.0),
            rope_ntk_beta=rope.get("beta_fast", 32.0),
            rms_norm_eps=raw.get("rms_norm_eps", 1e-5),
            rope_truncate=rope.get("truncate", True),
        )
        layer_types = raw.get("layer_types")
        if layer_types is not None and layer_types != config.to_hf()["layer_types"]:
            raise ConfigError(
                "config: layer_types must alternate sliding_attention (even layers) and "
                f"full_attention (odd layers), got {layer_types!r}"
            )
        return config

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        """Either layout's config.json, told apart by transformers' `model_type`."""
        if raw.get("model_type") is not None:
            if raw["model_type"] != "gpt_oss":
                raise ConfigError(f"config: model_type is {raw['model_type']!r}, not 'gpt_oss'")
            return cls.from_hf(raw)
        return cls.from_original(raw)

    @classmethod
    def from_file(cls, path: Path) -> ModelConfig:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path}: cannot read config ({error})") from error
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        try:
            return cls.from_dict(raw)
        except (ConfigError, TypeError) as error:
            raise ConfigError(f"{path}: {error}") from error


_20B = ModelConfig()
_TINY = ModelConfig(
    num_hidden_layers=4,
    num_experts=8,
    vocab_size=1024,
    hidden_size=64,
    intermediate_size=64,
    head_dim=16,
    num_attention_heads=8,
    num_key_value_heads=2,
    sliding_window=16,
)
PRESETS: dict[str, ModelConfig] = {
    "tiny": _TINY,
    # Tiny, but with gpt-oss's vocabulary, so harmony prompts fit: for trying the agent offline.
    "mini": dataclasses.replace(_TINY, vocab_size=201088),
    "20b": _20B,
    "120b": dataclasses.replace(_20B, num_hidden_layers=36, num_experts=128),
    # gpt-oss-20b's per-token cost with every expert active: what a benchmark can hold on disk.
    "20b-4experts": dataclasses.replace(_20B, num_experts=4),
    # The bundled demo model's shape (runtime.nano): trainable on a CPU in an hour.
    "nano": ModelConfig(
        num_hidden_layers=3,
        num_experts=4,
        experts_per_token=2,
        hidden_size=128,
        intermediate_size=128,
        head_dim=32,
        num_attention_heads=8,
        num_key_value_heads=4,  # 4 x 32 = hidden: each KV head can start as a copier
    ),
}


def bits_per_param_mxfp4() -> float:
    """4-bit values plus one 8-bit scale per block of 32."""
    return 4 + 8 / 32


def estimate_bytes(config: ModelConfig) -> dict[str, int]:
    """On-disk and resident sizes: MXFP4 experts, bf16 everything else."""
    counts = config.param_counts()
    experts = math.ceil(counts["experts"] * bits_per_param_mxfp4() / 8)
    dense = counts["dense"] * 2
    return {"experts": experts, "dense": dense, "total": experts + dense}
