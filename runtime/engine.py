"""The interface every token source implements: the bundled model and remote engines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class GenerationStats:
    """What one generate call cost. `reused` prompt tokens came from the KV cache of
    earlier calls; only `prefilled` ones were run through the model."""

    prompt_tokens: int = 0
    prefilled: int = 0
    reused: int = 0
    generated: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def prefill_tokens_per_second(self) -> float:
        return self.prefilled / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        # The first token comes from the prefill's logits; each later one costs a decode step.
        steps = max(self.generated - 1, 0)
        return steps / self.decode_seconds if self.decode_seconds else 0.0


@dataclass(frozen=True)
class Sampling:
    """How one completion is sampled: the keyword arguments of `Engine.generate`, as one
    value that engines pass around instead of five loose arguments."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop_tokens: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop_tokens", frozenset(self.stop_tokens))

    def options(self) -> dict[str, Any]:
        """The keyword arguments of `generate` (stop tokens sorted, for stable requests)."""
        return {**asdict(self), "stop_tokens": sorted(self.stop_tokens)}


class Engine(Protocol):
    """A token source. Subclass it to inherit the defaults of what the agent loop reads
    besides `generate`: `max_context` (the most prompt plus new tokens one call may hold;
    None when the engine does not say, e.g. a server), `last_stats` (the last call's prefill
    and cache use; None when the engine does not report them), `default_temperature` (what
    the agent samples at unless told: 1.0, as OpenAI recommends for gpt-oss) and `cancel`."""

    max_context: int | None = None
    last_stats: GenerationStats | None = None
    default_temperature: float = 1.0

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
        """Stream new token ids after `tokens`; a stop token is yielded, then generation ends."""
        ...

    def cancel(self) -> None:
        """Make a `generate` running in another thread stop now (its iterator ends or
        raises), e.g. one waiting on a server. The default does nothing: the caller stops
        pulling tokens, which is enough for an engine that yields often."""
        return None
