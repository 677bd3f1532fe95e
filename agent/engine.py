"""What the agent needs from a model: the generate interface every engine shares.

The bundled torch runtime and the remote engines (`runtime.remote`) satisfy this protocol
structurally; a test double only has to implement `generate`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class Engine(Protocol):
    def generate(
        self,
        tokens: Sequence[int],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_tokens: Sequence[int] = (),
    ) -> Iterator[int]:
        """Stream new token ids for the prompt `tokens`; a stop token, if hit, comes last."""
        ...


@dataclass(frozen=True)
class EngineStats:
    """How a generate call's prompt was processed, for engines that report it: a cache hit
    (`reused_tokens`) costs nothing, `prefilled_tokens` went through the model."""

    prefilled_tokens: int | None = None
    reused_tokens: int | None = None


def engine_stats(engine: object) -> EngineStats:
    """The last call's stats from an engine's optional `last_stats` (object or mapping)."""
    stats = getattr(engine, "last_stats", None)
    if stats is None:
        return EngineStats()
    if isinstance(stats, EngineStats):
        return stats

    def read(name: str) -> int | None:
        value = stats.get(name) if isinstance(stats, dict) else getattr(stats, name, None)
        return int(value) if value is not None else None

    return EngineStats(read("prefilled_tokens"), read("reused_tokens"))
