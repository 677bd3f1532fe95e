"""Per-layer key/value caches that persist between generate calls.

Each slot records the position it holds (-1: empty), so attention masks by position and a
rollback to a shorter prefix only forgets slots. Full layers index slots by position;
sliding layers keep a ring of `window` slots (position % window), since no query looks back
further.
"""

from __future__ import annotations

import torch


class LayerCache(torch.nn.Module):
    def __init__(
        self,
        slots: int,
        kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
        ring: bool,
    ) -> None:
        super().__init__()
        self.ring = ring
        self.register_buffer(
            "k", torch.zeros(slots, kv_heads, head_dim, dtype=dtype, device=device)
        )
        self.register_buffer(
            "v", torch.zeros(slots, kv_heads, head_dim, dtype=dtype, device=device)
        )
        self.register_buffer("pos", torch.full((slots,), -1, dtype=torch.long, device=device))

    @property
    def slots(self) -> int:
        return self.k.shape[0]

    def write(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor) -> None:
        """Store new keys/values; a ring keeps only the last `slots` of them."""
        if self.ring:
            keep = min(self.slots, k.shape[0])
            k, v, positions = k[-keep:], v[-keep:], positions[-keep:]
            index = positions % self.slots
        else:
            index = positions
        self.k.index_copy_(0, index, k)
        self.v.index_copy_(0, index, v)
        self.pos.index_copy_(0, index, positions)

    def forget_from(self, length: int) -> None:
        """Drop every position >= length (a rollback to a shorter prefix)."""
        self.pos.masked_fill_(self.pos >= length, -1)

    def grow(self, slots: int) -> None:
        """Enlarge a full-context cache, keeping its contents (never called on a ring)."""
        old = self.slots
        for name in ("k", "v", "pos"):
            buffer = getattr(self, name)
            fill = -1 if name == "pos" else 0
            bigger = buffer.new_full((slots, *buffer.shape[1:]), fill)
            bigger[:old] = buffer
            setattr(self, name, bigger)


class SequenceCaches(list[LayerCache]):
    """One layer's caches for a batch of sequences, one per row: a batched decode step runs
    the projections for all rows at once and attention per sequence against its own cache."""
