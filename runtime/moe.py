"""The mixture-of-experts MLP: top-k routing in fp32, MXFP4 experts kept packed, clamped
SwiGLU.

On the CPU with the C++ kernels the whole layer (norm, router, experts) is one call and the
experts run threaded straight from the packed weights; fp32 models keep fp32 activations
there (they are the reference), others quantize activations to int8 per block of 32.
Elsewhere experts are unpacked per use.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
import torch.nn.functional as F

from runtime import kernels
from runtime.mxfp4 import dequantize

SWIGLU_ALPHA = 1.702


def swiglu(h: torch.Tensor, limit: float) -> torch.Tensor:
    """gpt-oss's clamped SwiGLU on interleaved (glu, linear) pairs."""
    glu = h[..., ::2].clamp(max=limit)
    linear = h[..., 1::2].clamp(min=-limit, max=limit)
    return glu * torch.sigmoid(SWIGLU_ALPHA * glu) * (linear + 1)


class ExpertCache:
    """Unpacked experts, least recently used first out, within a byte budget.

    On CPUs unpacking costs more than the matmul it feeds, so recently used experts are
    kept; the packed weights stay the only full copy.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.entries: OrderedDict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = (
            OrderedDict()
        )

    def get(self, key: tuple[int, int], unpack) -> tuple[torch.Tensor, torch.Tensor]:
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        weights = unpack()
        size = sum(w.numel() * w.element_size() for w in weights)
        if size <= self.budget:
            while self.used + size > self.budget:
                _, evicted = self.entries.popitem(last=False)
                self.used -= sum(w.numel() * w.element_size() for w in evicted)
            self.entries[key] = weights
            self.used += size
        return weights


class MoE(torch.nn.Module):
    packed_experts = True  # the experts are the packed MXFP4 buffers the CPU kernels read

    def __init__(
        self,
        layer: int,
        norm: torch.nn.Module,
        gate: torch.nn.Linear,
        experts: dict[str, torch.Tensor],
        top_k: int,
        swiglu_limit: float,
    ) -> None:
        super().__init__()
        self.layer = layer
        self.norm = norm
        self.gate = gate
        self.top_k = top_k
        self.swiglu_limit = swiglu_limit
        for name, tensor in experts.items():  # kernels.PACKED: blocks and scales (uint8), biases
            self.register_buffer(name, tensor, persistent=False)
        self.cache: ExpertCache | None = None

    @functools.cached_property
    def kernel_weights(self) -> object:
        """This half's weights as the CPU kernels take them, gathered on first use (the same
        tensors, not copies: in-place updates show through, replaced buffers do not)."""
        return kernels.moe_weights(
            self.norm.scale,
            self.norm.eps,
            (self.gate.weight, self.gate.bias),
            self.top_k,
            {name: getattr(self, name) for name in kernels.PACKED},
            self.swiglu_limit,
            exact=self.mlp1_bias.dtype == torch.float32,
        )

    def forward(self, x: torch.Tensor, gather: bool = False) -> torch.Tensor:
        """x [T, hidden] -> x + moe(norm(x)). `gather` unpacks the k experts of each token
        with static shapes (decode under torch.compile / CUDA graphs); otherwise each
        expert any token chose is unpacked once."""
        if self.packed_experts and x.dtype == torch.float32 and kernels.serve(x):
            return kernels.moe_block(x, self.kernel_weights)
        t = self.norm(x)
        # The router in fp32: in bf16 close logits tie and flip which experts run.
        router = self.gate(t.float())  # loaded in fp32
        top, experts = torch.topk(router, self.top_k, dim=-1, sorted=True)
        weights = torch.softmax(top, dim=-1)
        mix = self._gathered if gather else self._grouped
        return x + mix(t, experts, weights.to(t.dtype))

    def _gathered(self, t: torch.Tensor, experts: torch.Tensor, weights: torch.Tensor):
        flat = experts.reshape(-1)
        w1 = dequantize(self.mlp1_blocks[flat], self.mlp1_scales[flat], t.dtype)
        w2 = dequantize(self.mlp2_blocks[flat], self.mlp2_scales[flat], t.dtype)
        inputs = t.repeat_interleave(self.top_k, dim=0).unsqueeze(-1)
        h = torch.bmm(w1, inputs).squeeze(-1) + self.mlp1_bias[flat]
        out = torch.bmm(w2, swiglu(h, self.swiglu_limit).unsqueeze(-1)).squeeze(-1)
        out = (out + self.mlp2_bias[flat]).view(*experts.shape, -1)
        return (out * weights.unsqueeze(-1)).sum(dim=1)

    def _unpack(self, e: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            dequantize(self.mlp1_blocks[e], self.mlp1_scales[e], dtype),
            dequantize(self.mlp2_blocks[e], self.mlp2_scales[e], dtype),
        )

    def _unpacked(self, x: torch.Tensor, e: int) -> torch.Tensor:
        """Expert e on many tokens: unpack once (or take it from the cache), then GEMMs."""
        if self.cache is None:
            w1, w2 = self._unpack(e, x.dtype)
        else:
            w1, w2 = self.cache.get((self.layer, e), lambda: self._unpack(e, x.dtype))
        h = F.linear(x, w1, self.mlp1_bias[e])
        return F.linear(swiglu(h, self.swiglu_limit), w2, self.mlp2_bias[e])

    def _grouped(self, t: torch.Tensor, experts: torch.Tensor, weights: torch.Tensor):
        out = torch.zeros_like(t)
        for e in experts.unique().tolist():
            token, slot = torch.where(experts == e)
            y = self._unpacked(t[token], e)
            out[token] += y * weights[token, slot].unsqueeze(-1)  # each token picks e once
        return out
