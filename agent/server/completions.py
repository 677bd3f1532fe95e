"""`POST /v1/completions`: raw token ids in, token ids out (what `runtime.remote` speaks).

The prompt is a list of token ids (or text, encoded with no special tokens); every choice
carries the sampled `token_ids`, the stop token included, so a remote agent parses exactly
what the model produced.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.loop import ThreadedTokens
from agent.server.body import parse_body
from agent.server.errors import APIError
from agent.server.session import RequestEngine, ServerState, disconnected, new_id
from agent.server.sse import DONE, event_stream, sse
from runtime.engine import GenerationStats, Sampling


class StreamOptions(BaseModel):
    include_usage: bool = False


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: list[int] | str
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stop_token_ids: list[int] = []
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    skip_special_tokens: bool = True


class _Text:
    """Sampled ids to text as they arrive: a multi-byte character split across tokens
    waits for its end; special tokens are shown or skipped."""

    def __init__(self, state: ServerState, skip_special: bool) -> None:
        self.encoding = state.encoding
        self.skip_special = skip_special
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, tokens: list[int]) -> str:
        if self.skip_special:
            tokens = [t for t in tokens if not self.encoding.is_special_token(t)]
        return self.decoder.decode(self.encoding.decode_bytes(tokens))

    def flush(self) -> str:
        return self.decoder.decode(b"", final=True)


async def create_completion(request: Request) -> Response:
    state: ServerState = request.app.state.server
    body = await parse_body(request, CompletionRequest, state.limits.max_body_bytes)
    state.check_model(body.model)
    prompt = _prompt_ids(state, body)
    max_tokens = min(body.max_tokens, state.limits.max_tokens)
    room = getattr(state.engine, "max_context", None)
    if isinstance(room, int) and len(prompt) + max_tokens > room:
        raise APIError(
            400,
            f"the prompt ({len(prompt)} tokens) plus max_tokens ({max_tokens}) exceeds the "
            f"model's context of {room} tokens",
            code="context_length_exceeded",
            param="max_tokens",
        )
    release = state.admit()
    try:
        engine = RequestEngine(state.engine)
        sampling = Sampling(
            max_tokens=max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop_tokens=body.stop_token_ids,
        )
        tokens = ThreadedTokens(engine, prompt, sampling)
        first = await _first(tokens, state)
        run = _Completion(state, body, prompt, engine, tokens, first)
        if body.stream:
            return event_stream(run.chunks(request), release)
        return JSONResponse(await run.whole(request))
    except BaseException:
        release()
        raise
    finally:
        if not body.stream:
            release()


def _prompt_ids(state: ServerState, body: CompletionRequest) -> list[int]:
    if isinstance(body.prompt, str):
        prompt = state.encoding.encode(body.prompt, allowed_special=set())
    else:
        prompt = body.prompt
    if not prompt:
        raise APIError(400, "the prompt is empty", param="prompt")
    vocab = state.encoding.tokenizer.n_vocab
    bad = [t for t in prompt if not 0 <= t < vocab]
    if bad:
        raise APIError(
            400, f"token ids {bad[:5]} are outside the vocabulary [0, {vocab})", param="prompt"
        )
    return prompt


async def _first(tokens: ThreadedTokens, state: ServerState) -> int | None:
    """The first token, so that a request the engine refuses gets a proper status."""
    try:
        return await tokens.next(state.limits.request_seconds)
    except ValueError as exc:
        await tokens.aclose(abandon=True)
        raise APIError(400, str(exc), param="prompt") from None
    except BaseException:
        await tokens.aclose(abandon=True)
        raise


class _Completion:
    def __init__(
        self,
        state: ServerState,
        body: CompletionRequest,
        prompt: list[int],
        engine: RequestEngine,
        tokens: ThreadedTokens,
        first: int | None,
    ) -> None:
        self.state = state
        self.engine = engine
        self.body = body
        self.prompt = prompt
        self.tokens = tokens
        self.first = first
        self.stop = set(body.stop_token_ids)
        self.id = new_id("cmpl")
        self.created = int(time.time())
        self.generated: list[int] = []
        self.text = _Text(state, body.skip_special_tokens)

    async def _ids(self, request: Request) -> AsyncIterator[int]:
        """The sampled ids; the stream closes (freeing the batch slot) when the client
        leaves or the response ends."""
        gone = asyncio.create_task(disconnected(request))
        try:
            token = self.first
            while token is not None:
                self.generated.append(token)
                yield token
                if token in self.stop:
                    return
                step = asyncio.ensure_future(self.tokens.next(self.state.limits.request_seconds))
                await asyncio.wait({step, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await step
                    return
                token = step.result()
        finally:
            gone.cancel()
            self.engine.close()
            await self.tokens.aclose(abandon=True)

    def _finish(self) -> tuple[str, int | None]:
        last = self.generated[-1] if self.generated else None
        if last is not None and last in self.stop:
            return "stop", last
        return "length", None

    def _usage(self) -> dict[str, Any]:
        stats = self.engine.last_stats
        usage: dict[str, Any] = {
            "prompt_tokens": len(self.prompt),
            "completion_tokens": len(self.generated),
            "total_tokens": len(self.prompt) + len(self.generated),
        }
        if isinstance(stats, GenerationStats):
            usage["prompt_tokens_details"] = {"cached_tokens": stats.reused}
        return usage

    def _choice(self, text: str, token_ids: list[int], finish: str | None, stop_reason):
        return {
            "index": 0,
            "text": text,
            "token_ids": token_ids,
            "logprobs": None,
            "finish_reason": finish,
            "stop_reason": stop_reason,
        }

    def _object(self, choices: list[dict], usage: dict | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.state.model_name,
            "choices": choices,
            "usage": usage,
        }

    async def whole(self, request: Request) -> dict[str, Any]:
        async for _ in self._ids(request):
            pass
        finish, stop_reason = self._finish()
        text = self.text(self.generated) + self.text.flush()
        choice = self._choice(text, self.generated, finish, stop_reason)
        choice["prompt_token_ids"] = self.prompt
        return self._object([choice], self._usage())

    async def chunks(self, request: Request) -> AsyncIterator[str]:
        async for token in self._ids(request):
            yield sse(self._object([self._choice(self.text([token]), [token], None, None)], None))
        finish, stop_reason = self._finish()
        yield sse(self._object([self._choice(self.text.flush(), [], finish, stop_reason)], None))
        if self.body.stream_options and self.body.stream_options.include_usage:
            yield sse(self._object([], self._usage()))
        yield DONE
