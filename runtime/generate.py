"""The local engine: full forwards, cached generation with prefix reuse, sampling.

The KV cache outlives a call: when the next prompt extends what the cache holds (the last
prompt plus the tokens generated after it), only the new tokens are prefilled. Decode
steps have static shapes, so on CUDA they run under torch.compile(mode="reduce-overhead").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence

import torch

from runtime.config import ModelConfig
from runtime.engine import Engine, GenerationStats, Sampling
from runtime.kv_cache import LayerCache
from runtime.model import Transformer
from runtime.moe import ExpertCache


def sample(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> int:
    """Greedy at temperature 0; otherwise nucleus sampling over the scaled distribution."""
    if temperature == 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (at least the top token).
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(outside, 0))
    return int(torch.multinomial(probs, 1, generator=generator))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LocalModel(Engine):
    """A loaded gpt-oss model: `logits` for reference, `generate` to stream tokens."""

    def __init__(
        self,
        transformer: Transformer,
        *,
        static: bool = False,
        compile: bool = False,
        max_context: int | None = None,
        prefill_chunk: int = 512,
        expert_cache_bytes: int = 0,
    ) -> None:
        self.transformer = transformer
        self.config: ModelConfig = transformer.config
        self.device = transformer.embedding.device
        self.dtype = transformer.embedding.dtype
        self.static = static or compile
        self.max_context = min(max_context or self.config.max_positions, self.config.max_positions)
        self.prefill_chunk = prefill_chunk
        if expert_cache_bytes:
            cache = ExpertCache(expert_cache_bytes)
            for block in transformer.blocks:
                block.mlp.cache = cache
        self.compiled = compile
        self._decode = self._decode_step
        if compile:
            self._decode = torch.compile(
                self._decode_step, mode="reduce-overhead", fullgraph=True, dynamic=False
            )
        self.caches: list[LayerCache] = []
        self.cached: list[int] = []  # the tokens whose keys/values the caches hold
        self.last_stats = GenerationStats()

    @torch.no_grad()
    def logits(self, tokens: Sequence[int]) -> torch.Tensor:
        """A full forward without the cache: logits [len(tokens), vocab]."""
        ids = self._ids(tokens)
        return self.transformer(ids, torch.arange(len(ids), device=self.device))

    def reset(self) -> None:
        """Forget the cache; the next call prefills from scratch."""
        self.cached = []
        for cache in self.caches:
            cache.forget_from(0)

    def generate(
        self,
        tokens: Sequence[int],
        *,
        max_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_tokens: Iterable[int] = (),
    ) -> Iterator[int]:
        """Stream up to `max_tokens` new ids; a stop token is yielded, then generation ends.
        `last_stats` describes the call (final once the iterator is exhausted)."""
        tokens = list(tokens)
        sampling = Sampling(max_tokens, temperature, top_p, seed, frozenset(stop_tokens))
        if not tokens:
            raise ValueError("generate needs at least one prompt token")
        if len(tokens) + max_tokens > self.max_context:
            raise ValueError(
                f"prompt ({len(tokens)}) + max_tokens ({max_tokens}) exceeds the context "
                f"({self.max_context} positions)"
            )
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        return self._stream(tokens, sampling, generator)

    @torch.no_grad()
    def _stream(
        self, tokens: list[int], sampling: Sampling, generator: torch.Generator | None
    ) -> Iterator[int]:
        stats = self.last_stats = GenerationStats(prompt_tokens=len(tokens))
        max_tokens, stop = sampling.max_tokens, sampling.stop_tokens
        if max_tokens <= 0:
            return
        try:
            start = time.perf_counter()
            self._ensure_caches(len(tokens) + max_tokens)
            stats.reused = self._reuse(tokens)
            stats.prefilled = len(tokens) - stats.reused
            logits = self._prefill(tokens[stats.reused :])
            stats.prefill_seconds = time.perf_counter() - start
            for step in range(max_tokens):
                token = sample(logits, sampling.temperature, sampling.top_p, generator)
                stats.generated += 1
                yield token
                if token in stop or step == max_tokens - 1:
                    return
                start = time.perf_counter()
                logits = self._decode_next(token)
                stats.decode_seconds += time.perf_counter() - start
        except GeneratorExit:  # closed between steps: the caches hold exactly `self.cached`
            raise
        except BaseException:
            self.reset()  # a forward may have stopped half-way through the caches
            raise

    def _ids(self, tokens: Sequence[int]) -> torch.Tensor:
        ids = torch.tensor(list(tokens), dtype=torch.long, device=self.device)
        if ids.numel() == 0:
            raise ValueError("no tokens given: generate and logits need at least one")
        if ids.min() < 0 or ids.max() >= self.config.vocab_size:
            raise ValueError(
                f"token id {int(ids.max() if ids.max() >= 0 else ids.min())} is outside this "
                f"checkpoint's vocabulary [0, {self.config.vocab_size}). gpt-oss prompts use "
                "ids up to 201087: use a real checkpoint, or a random one with the full "
                "vocabulary (`oss-agent model random PATH --preset mini`)."
            )
        return ids

    def _ensure_caches(self, length: int) -> None:
        """Create the caches, or grow the full-context ones (the static mode allocates
        max_context once, so compiled decode steps never see a new shape)."""
        c = self.config
        if self.static:
            slots = self.max_context
        else:
            slots = 256
            while slots < length:
                slots *= 2
            slots = min(slots, self.max_context)
        if not self.caches:
            self.caches = [
                LayerCache(
                    c.sliding_window if c.is_sliding(n) else slots,
                    c.num_key_value_heads,
                    c.head_dim,
                    self.dtype,
                    self.device,
                    ring=c.is_sliding(n),
                )
                for n in range(c.num_hidden_layers)
            ]
            if self.compiled:  # CUDA graphs may then update the caches in place
                for cache in self.caches:
                    for buffer in (cache.k, cache.v, cache.pos):
                        torch._dynamo.mark_static_address(buffer)
        for cache in self.caches:
            if not cache.ring and cache.slots < slots:
                cache.grow(slots)

    def _reuse(self, tokens: list[int]) -> int:
        """How many leading tokens the caches can serve; forgets the rest."""
        # At least the last prompt token is run, for the logits of the first new token.
        keep = min(_common_prefix(self.cached, tokens), len(tokens) - 1)
        # A ring only goes back as far as its window: the query at `keep` needs the
        # positions keep-window+1 .. keep-1, and the ring holds the last `window` positions.
        window = self.config.sliding_window
        if keep < len(self.cached) and max(0, keep - window + 1) < len(self.cached) - window:
            keep = 0
        for cache in self.caches:
            cache.forget_from(keep)
        self.cached = tokens[:keep]
        return keep

    def _prefill(self, new: list[int]) -> torch.Tensor:
        """Run new tokens through the model in chunks (bounding the attention scores)."""
        for begin in range(0, len(new), self.prefill_chunk):
            chunk = new[begin : begin + self.prefill_chunk]
            start = len(self.cached)
            positions = torch.arange(start, start + len(chunk), device=self.device)
            logits = self.transformer(self._ids(chunk), positions, self.caches, last_only=True)
            self.cached.extend(chunk)
        return logits[-1]

    def _decode_next(self, token: int) -> torch.Tensor:
        ids = torch.tensor([token], device=self.device)
        position = torch.tensor([len(self.cached)], device=self.device)
        logits = self._decode(ids, position)
        self.cached.append(token)
        return logits[-1].clone()

    def _decode_step(self, ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        return self.transformer(ids, position, self.caches, gather=self.static)
