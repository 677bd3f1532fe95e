"""Continuous batching: one scheduler thread decodes many sequences together.

Each request runs in a slot: a `LocalModel` sharing the loaded transformer, i.e. its own KV
caches and the tokens they hold. A request takes the idle slot whose tokens share the
longest prefix with its prompt (a conversation's next turn finds its own cache), prefills
only the rest, then joins the running batch. Each step is one forward over the next token
of every running sequence: the dense and expert matmuls run once for the batch, attention
per sequence against its own cache (`SequenceCaches`). Sequences join and leave between
steps; a caller that closes its stream leaves the batch at the next step.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from runtime.engine import Engine, GenerationStats
from runtime.generate import LocalModel, _common_prefix, sample
from runtime.kv_cache import SequenceCaches


class EngineClosed(RuntimeError):
    """The engine shut down before the request finished."""


_END = object()


@dataclass(eq=False)
class _Request:
    prompt: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    generator: torch.Generator | None
    stop: frozenset[int]
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    slot: LocalModel | None = None
    next_token: int | None = None
    stats: GenerationStats = field(default_factory=GenerationStats)


class TokenStream(Iterator[int]):
    """The new ids of one request, as the scheduler produces them. `stats` is final once
    the stream ends; `close()` (also on garbage collection) frees the request's slot."""

    def __init__(self, engine: BatchedEngine, request: _Request) -> None:
        self._engine = engine
        self._request = request
        self._submitted = False
        self._done = False

    @property
    def stats(self) -> GenerationStats:
        return self._request.stats

    def __next__(self) -> int:
        if self._done:
            raise StopIteration
        if not self._submitted:
            self._submitted = True
            self._engine._submit(self._request)
        item = self._request.out.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def close(self) -> None:
        if self._submitted and not self._done:
            self._engine._cancel(self._request)
        self._done = True

    def __del__(self) -> None:
        self.close()


class BatchedEngine(Engine):
    """The `Engine` interface for many callers at once (thread-safe) over one loaded model.

    `max_batch` sequences decode together; more requests wait their turn in arrival order
    (callers bound how many may wait). `max_slots` caches are kept, so that many
    conversations keep their prefix between turns.
    """

    def __init__(
        self, model: LocalModel, *, max_batch: int = 16, max_slots: int | None = None
    ) -> None:
        self.model = model
        self.config = model.config
        self.max_context = model.max_context
        self.max_batch = max_batch
        self.max_slots = max(max_slots or 2 * max_batch, max_batch)
        self._idle: list[LocalModel] = []  # least recently used first
        self._slot_count = 0
        self._waiting: deque[_Request] = deque()
        self._running: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="batched-engine", daemon=True)
        self._thread.start()

    def generate(
        self,
        tokens: Sequence[int],
        *,
        max_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_tokens: Iterable[int] = (),
    ) -> TokenStream:
        """Stream up to `max_tokens` new ids; a stop token is yielded, then generation ends.
        The request joins the batch when the stream is first read."""
        tokens = list(tokens)
        if not tokens:
            raise ValueError("generate needs at least one prompt token")
        if len(tokens) + max_tokens > self.max_context:
            raise ValueError(
                f"prompt ({len(tokens)}) + max_tokens ({max_tokens}) exceeds the context "
                f"({self.max_context} positions)"
            )
        self.model._ids(tokens)  # the same vocabulary check as the single-sequence engine
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.model.device).manual_seed(seed)
        request = _Request(
            tokens, max_tokens, temperature, top_p, generator, frozenset(stop_tokens)
        )
        request.stats.prompt_tokens = len(tokens)
        return TokenStream(self, request)

    @property
    def running(self) -> int:
        """Sequences in the batch now (a client that left is gone by the next step)."""
        with self._cond:
            return sum(not r.cancelled for r in self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def close(self, timeout: float = 30.0) -> None:
        """Take no new requests, let the ones in flight finish for up to `timeout` seconds,
        then end the rest with `EngineClosed`. Safe to call twice."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._running or self._waiting) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            for request in [*self._waiting, *self._running]:
                request.cancelled = True
                request.out.put(EngineClosed("the server is shutting down"))
            self._waiting.clear()
            self._cond.notify_all()
        self._thread.join(timeout=max(deadline - time.monotonic(), 0) + 5)

    # -- called by TokenStream -------------------------------------------------------------

    def _submit(self, request: _Request) -> None:
        with self._cond:
            if self._closed:
                raise EngineClosed("the engine is shut down and takes no new requests")
            self._waiting.append(request)
            self._cond.notify_all()

    def _cancel(self, request: _Request) -> None:
        with self._cond:
            request.cancelled = True
            if request in self._waiting:
                self._waiting.remove(request)
                request.out.put(_END)  # a reader blocked on it (another thread) wakes up
            self._cond.notify_all()

    # -- the scheduler thread --------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._leave_cancelled()
                while not self._running and not self._waiting:
                    if self._closed:
                        return
                    self._cond.wait()
                joining = []
                while self._waiting and len(self._running) + len(joining) < self.max_batch:
                    joining.append(self._waiting.popleft())
            for request in joining:
                self._join(request)
            self._step()

    def _leave_cancelled(self) -> None:
        for request in [r for r in self._running if r.cancelled]:
            self._finish(request, None)

    @torch.no_grad()
    def _join(self, request: _Request) -> None:
        """Prefill a new request in its slot and sample its first token."""
        with self._cond:
            slot = self._take_slot(request.prompt)
            request.slot = slot
            self._running.append(request)
        stats = request.stats
        try:
            start = time.perf_counter()
            slot._ensure_caches(len(request.prompt) + request.max_tokens)
            stats.reused = slot._reuse(request.prompt)
            stats.prefilled = len(request.prompt) - stats.reused
            logits = slot._prefill(request.prompt[stats.reused :])
            stats.prefill_seconds = time.perf_counter() - start
        except Exception as exc:
            self._finish(request, exc)
            return
        self._emit(request, logits)

    @torch.no_grad()
    def _step(self) -> None:
        """One decode forward over the next token of every running sequence."""
        with self._cond:
            self._leave_cancelled()
            batch = list(self._running)
        if not batch:
            return
        device = self.model.device
        start = time.perf_counter()
        try:
            ids = torch.tensor([r.next_token for r in batch], device=device)
            positions = torch.tensor([len(r.slot.cached) for r in batch], device=device)
            caches = [
                SequenceCaches(r.slot.caches[n] for r in batch)
                for n in range(self.config.num_hidden_layers)
            ]
            logits = self.model.transformer(ids, positions, caches)
        except Exception as exc:
            for request in batch:
                self._finish(request, exc)
            return
        seconds = time.perf_counter() - start
        for request, row in zip(batch, logits, strict=True):
            request.slot.cached.append(request.next_token)
            request.stats.decode_seconds += seconds
            self._emit(request, row)

    def _emit(self, request: _Request, logits: torch.Tensor) -> None:
        """Sample the request's next token and hand it over; finish at a stop or the limit."""
        if request.cancelled:
            self._finish(request, None)
            return
        token = sample(logits, request.temperature, request.top_p, request.generator)
        request.stats.generated += 1
        request.out.put(token)
        if token in request.stop or request.stats.generated >= request.max_tokens:
            self._finish(request, None)
        else:
            request.next_token = token

    def _finish(self, request: _Request, error: BaseException | None) -> None:
        with self._cond:
            if request not in self._running:
                return
            self._running.remove(request)
            slot = request.slot
            if error is not None:
                slot.reset()  # a forward may have stopped half-way through the caches
            self._idle.append(slot)
            self._cond.notify_all()
        request.out.put(error if error is not None else _END)

    def _take_slot(self, prompt: list[int]) -> LocalModel:
        """A slot for `prompt`: its conversation's own, else a new one while under
        `max_slots`, else the idle one sharing the longest prefix (least recently used
        first). Call with the lock held."""
        best = max(self._idle, key=lambda s: _common_prefix(s.cached, prompt), default=None)
        shared = 0 if best is None else _common_prefix(best.cached, prompt)
        # A slot whose whole content starts the prompt is this conversation's: take it. One
        # that only shares the system prompt is another conversation's, worth keeping.
        if best is not None and shared > 0 and shared == len(best.cached):
            self._idle.remove(best)
            return best
        if self._slot_count < self.max_slots:
            self._slot_count += 1
            return LocalModel(
                self.model.transformer,
                max_context=self.max_context,
                prefill_chunk=self.model.prefill_chunk,
            )
        if shared > 0:
            self._idle.remove(best)
            return best
        return self._idle.pop(0)
