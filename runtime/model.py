"""The gpt-oss transformer as plain PyTorch modules.

One block: x = x + attn(rmsnorm(x)); x = x + moe(rmsnorm(x)). Attention has grouped KV
heads, one learned sink logit per head, YaRN RoPE and, on even layers, a sliding window.

On the CPU with the C++ kernels (inference, not under torch.compile) activations stay in
fp32 whatever the weights' dtype: bf16 weights are widened in registers, each half of a
block runs as a single kernel call when it has a cache to update (attention alone, without
one), a decode step runs all blocks in one call, and the router and logits are fp32
everywhere.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from runtime import kernels
from runtime.config import ModelConfig
from runtime.kv_cache import LayerCache, SequenceCaches
from runtime.moe import MoE


def project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear in x's dtype; fp32 activations against bf16 weights (the CPU kernel path)
    accumulate in fp32 without widening the weights in memory."""
    if x.dtype == weight.dtype:
        return F.linear(x, weight, bias)
    if weight.dtype == torch.bfloat16 and kernels.serve(x):
        return kernels.linear_bf16(x, weight, bias)
    return F.linear(x.to(weight.dtype), weight, bias).to(x.dtype)


class RMSNorm(torch.nn.Module):
    """Normalizes in fp32 whatever the compute dtype, as the model was trained."""

    def __init__(self, scale: torch.Tensor, eps: float) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(scale.float(), requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and x.dim() == 2 and kernels.serve(x):
            return kernels.rms_norm(x, self.scale, self.eps)
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.scale * h).to(x.dtype)


def yarn_inv_freq(config: ModelConfig) -> tuple[torch.Tensor, float]:
    """YaRN: keep high frequencies, divide low ones by the factor, ramp in between; the
    concentration rescales cos/sin."""
    d, base, factor = config.head_dim, config.rope_theta, config.rope_scaling_factor
    length = config.initial_context_length

    def bound(rotations: float) -> float:
        return d * math.log(length / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = bound(config.rope_ntk_beta), bound(config.rope_ntk_alpha)
    if config.rope_truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001
    freq = base ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    ramp = ((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1: extrapolate (original frequency), 0: interpolate (divided)
    inv_freq = (1.0 / (factor * freq)) * (1 - keep) + (1.0 / freq) * keep
    concentration = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
    return inv_freq, concentration


class Rotary(torch.nn.Module):
    def __init__(self, config: ModelConfig, device: torch.device) -> None:
        super().__init__()
        inv_freq, self.concentration = yarn_inv_freq(config)
        self.register_buffer("inv_freq", inv_freq.to(device), persistent=False)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype):
        angles = positions.float().unsqueeze(-1) * self.inv_freq
        cos = (angles.cos() * self.concentration).to(dtype)
        sin = (angles.sin() * self.concentration).to(dtype)
        return cos.unsqueeze(1), sin.unsqueeze(1)  # [T, 1, d/2]: broadcast over heads


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split RoPE: the first half of head_dim pairs with the second."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat((a * cos - b * sin, b * cos + a * sin), dim=-1)


class Attention(torch.nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        layer: int,
        norm: RMSNorm,
        qkv: torch.nn.Linear,
        out: torch.nn.Linear,
        sinks: torch.Tensor,
    ) -> None:
        super().__init__()
        self.norm, self.qkv, self.out = norm, qkv, out
        self.sinks = torch.nn.Parameter(sinks, requires_grad=False)
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.window = config.sliding_window if config.is_sliding(layer) else None

    @functools.cached_property
    def kernel_weights(self) -> object:
        """This half's weights as the CPU kernels take them, gathered on first use (the same
        tensors, not copies: in-place updates show through, replaced parameters do not)."""
        return kernels.attention_weights(
            self.norm.scale,
            self.norm.eps,
            (self.qkv.weight, self.qkv.bias),
            (self.heads, self.kv_heads, self.head_dim),
            self.sinks,
            self.window,
            (self.out.weight, self.out.bias),
        )

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: LayerCache | SequenceCaches | None,
    ) -> torch.Tensor:
        """x [T, hidden] at `positions` [T] -> x + attn(norm(x)), reading and updating `cache`.
        With `SequenceCaches` each row is the next token of its own sequence (batched decode)."""
        T, d = x.shape[0], self.head_dim
        if (
            isinstance(cache, LayerCache)
            and not (cache.ring and T > 1)
            and x.dtype == torch.float32
            and kernels.serve(x)
        ):
            cached = (cache.k, cache.v, cache.pos, cache.ring)
            return kernels.attention_block(x, self.kernel_weights, rope, cached, positions)
        qkv = project(self.norm(x), self.qkv.weight, self.qkv.bias)
        fused = qkv.dtype == torch.float32 and kernels.serve(qkv)
        if fused:  # q's heads, then k's, rotated in place in one call
            kernels.rope_(qkv, *rope, self.heads + self.kv_heads, d)
        q, k, v = qkv.split([self.heads * d, self.kv_heads * d, self.kv_heads * d], dim=-1)
        q, k, v = q.view(T, self.heads, d), k.view(T, self.kv_heads, d), v.view(T, self.kv_heads, d)
        if not fused:
            q, k = rotate(q, *rope), rotate(k, *rope)
        if isinstance(cache, SequenceCaches):
            row = [slice(i, i + 1) for i in range(T)]
            rows = [
                self._attend_cached(q[r], k[r], v[r], positions[r], c)
                for r, c in zip(row, cache, strict=True)
            ]
            mixed = torch.cat(rows)
        else:
            mixed = self._attend_cached(q, k, v, positions, cache)
        return x + project(mixed.to(x.dtype), self.out.weight, self.out.bias)

    def _attend_cached(self, q, k, v, positions, cache: LayerCache | None) -> torch.Tensor:
        """One sequence's attention: new keys/values join its cache, queries see what is
        visible at their positions."""
        if cache is not None:
            k, v = k.to(cache.k.dtype), v.to(cache.v.dtype)
        if cache is None:
            keys, values, key_pos = k, v, positions
        elif cache.ring and positions.shape[0] > 1:
            # Storing a chunk first would overwrite keys its earlier queries still see: attend
            # to the ring's older positions and the new keys, then store.
            keys, values = torch.cat([cache.k, k]), torch.cat([cache.v, v])
            key_pos = torch.cat([cache.pos, positions])
            cache.write(k, v, positions)
        else:
            # One new key takes the ring slot of the position a window back, which its query
            # no longer sees: store, then attend to the cache in place.
            cache.write(k, v, positions)
            keys, values, key_pos = cache.k, cache.v, cache.pos
        if kernels.serve(q):
            if cache is not None and not cache.ring:
                # Slots are positions here: only the prefix up to the newest one is in use.
                used = int(positions.max()) + 1
                keys, values, key_pos = keys[:used], values[:used], key_pos[:used]
            return kernels.attention(q, keys, values, key_pos, positions, self.sinks, self.window)
        visible = (key_pos >= 0) & (key_pos <= positions.unsqueeze(-1))
        if self.window is not None:
            visible &= key_pos > positions.unsqueeze(-1) - self.window
        return self._attend(q, keys, values, visible)

    def _attend(self, q, keys, values, visible) -> torch.Tensor:
        """Softmax over [scores, sink] per head, sink column dropped; KV heads broadcast
        over their query group instead of being copied."""
        T, group = q.shape[0], self.heads // self.kv_heads
        q = q.view(T, self.kv_heads, group, self.head_dim).permute(1, 2, 0, 3)
        keys, values = keys.permute(1, 0, 2).unsqueeze(1), values.permute(1, 0, 2).unsqueeze(1)
        scores = (q @ keys.transpose(-1, -2)).float() / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~visible, float("-inf"))
        sinks = self.sinks.float().view(self.kv_heads, group, 1, 1).expand(-1, -1, T, 1)
        probs = torch.softmax(torch.cat([scores, sinks], dim=-1), dim=-1)[..., :-1]
        out = probs.to(values.dtype) @ values  # [kv, group, T, d]
        return out.permute(2, 0, 1, 3).reshape(T, self.heads * self.head_dim)


class Block(torch.nn.Module):
    def __init__(self, attn: Attention, mlp: MoE) -> None:
        super().__init__()
        self.attn, self.mlp = attn, mlp

    def forward(self, x, positions, rope, cache, gather: bool) -> torch.Tensor:
        return self.mlp(self.attn(x, positions, rope, cache), gather=gather)


class Transformer(torch.nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        embedding: torch.Tensor,
        blocks: list[Block],
        norm: RMSNorm,
        unembedding: torch.Tensor,
    ) -> None:
        super().__init__()
        self.config = config
        self.embedding = torch.nn.Parameter(embedding, requires_grad=False)
        self.blocks = torch.nn.ModuleList(blocks)
        self.norm = norm
        self.unembedding = torch.nn.Parameter(unembedding, requires_grad=False)
        self.rotary = Rotary(config, embedding.device)

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        caches: list[LayerCache] | None = None,
        last_only: bool = False,
        gather: bool = False,
    ) -> torch.Tensor:
        """tokens [T] at positions [T] -> fp32 logits [T, vocab] (or [1, vocab] if last_only)."""
        x = self.hidden(tokens, positions, caches, gather)
        if last_only:
            x = x[-1:]
        return project(self.norm(x), self.unembedding, None).float()

    def hidden(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        caches: list[LayerCache] | None = None,
        gather: bool = False,
    ) -> torch.Tensor:
        """The last block's output [T, hidden], before the final norm: training unembeds
        only the positions it takes a loss at."""
        x = F.embedding(tokens, self.embedding)
        if kernels.serve(x):
            x = x.float()
        rope = self.rotary(positions, x.dtype)
        if caches is not None and self._decodes_in_one_call(x, caches):
            return kernels.decode_blocks(
                x,
                [block.attn.kernel_weights for block in self.blocks],
                [block.mlp.kernel_weights for block in self.blocks],
                rope,
                [(cache.k, cache.v, cache.pos, cache.ring) for cache in caches],
                positions,
            )
        for n, block in enumerate(self.blocks):
            x = block(x, positions, rope, None if caches is None else caches[n], gather)
        return x

    def _decodes_in_one_call(self, x: torch.Tensor, caches: list) -> bool:
        """One new token on the CPU kernels, every block with its own cache and packed experts:
        then both halves of every block are fused (see Attention.forward and MoE.forward) and
        the whole step is one kernel call."""
        return (
            x.shape[0] == 1
            and x.dtype == torch.float32
            and kernels.serve(x)
            and all(isinstance(cache, LayerCache) for cache in caches)
            and all(block.mlp.packed_experts for block in self.blocks)
        )
