"""What every endpoint shares: the server's state, admission, and one `Agent` per request.

The endpoints translate API messages into harmony messages, hand them to an `agent.Agent`
(the loop renders, samples, parses leniently and runs server-side tools), and translate
its events back. Function tools the client declared are `ClientFunction`s: the model sees
them, and a call to one ends the run so the client can answer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from agent.events import Event
from agent.harmony import (
    HarmonyEncoding,
    HarmonyEncodingName,
    Message,
    Role,
    ToolDescription,
    ToolNamespaceConfig,
    load_harmony_encoding,
)
from agent.loop import Agent, parse_effort
from agent.server.errors import APIError
from agent.server.store import ResponseStore
from runtime.engine import Engine, GenerationStats
from tools.base import Tool, ToolError, tool_message

ToolFactory = Callable[[Sequence[str]], list[Tool]]


@dataclass
class Limits:
    """Per-request and server-wide bounds."""

    max_tokens: int = 4096  # sampled tokens per model turn
    max_turns: int = 16  # model turns per request (server-side tool calls in between)
    max_body_bytes: int = 4 * 2**20
    max_in_flight: int = 64  # running + waiting requests; beyond: 429
    request_seconds: float | None = 600.0


@dataclass
class ServerState:
    engine: Engine
    model_name: str
    tool_factory: ToolFactory
    builtin_tools: frozenset[str]
    store: ResponseStore
    limits: Limits
    api_key: str | None = None
    encoding: HarmonyEncoding = field(
        default_factory=lambda: load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    )
    in_flight: int = 0
    created: int = field(default_factory=lambda: int(time.time()))

    def admit(self) -> Callable[[], None]:
        """Take one of `max_in_flight` places (429 when none is free); returns the function
        that gives it back (safe to call twice)."""
        if self.in_flight >= self.limits.max_in_flight:
            raise APIError(
                429,
                f"the server is busy ({self.in_flight} requests in flight); retry shortly",
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1

        return release

    def check_model(self, model: str | None) -> None:
        if model and model != self.model_name:
            raise APIError(
                404,
                f"the model {model!r} does not exist; this server serves {self.model_name!r}",
                code="model_not_found",
                param="model",
            )

    def tools_for(self, builtin: Iterable[str], functions: Sequence[ClientFunction]) -> list[Tool]:
        missing = sorted(set(builtin) - self.builtin_tools)
        if missing:
            offered = ", ".join(sorted(self.builtin_tools)) or "none"
            raise APIError(
                400,
                f"this server does not run the {', '.join(missing)} tool (enabled: {offered}); "
                "start it with --tools " + ",".join(sorted({*self.builtin_tools, *missing})),
                code="tool_not_available",
                param="tools",
            )
        return [*self.tool_factory(sorted(set(builtin))), *functions]

    def agent(
        self,
        tools: list[Tool],
        *,
        instructions: str | None,
        effort: str | None,
        max_tokens: int | None,
        temperature: float | None,
        top_p: float | None,
        seed: int | None = None,
        messages: Sequence[Message] = (),
    ) -> Agent:
        """An agent for one request over the shared engine, holding `messages` so far."""
        try:
            reasoning = parse_effort(effort or "medium")
        except ValueError as exc:
            raise APIError(400, str(exc), param="reasoning.effort") from None
        if max_tokens is not None and max_tokens < 1:
            raise APIError(400, "max tokens must be at least 1", param="max_tokens")
        agent = Agent(
            RequestEngine(self.engine),
            tools=tools,
            instructions=instructions or None,
            reasoning_effort=reasoning,
            max_turns=self.limits.max_turns,
            max_tokens_per_turn=min(max_tokens or self.limits.max_tokens, self.limits.max_tokens),
            max_seconds=self.limits.request_seconds,
            temperature=temperature,  # None: the model's default
            top_p=1.0 if top_p is None else top_p,
            seed=seed,
        )
        agent.messages.extend(messages)
        return agent


class RequestEngine(Engine):
    """The shared engine as one request's agent sees it: `last_stats` are this request's
    (the batched engine serves many agents at once)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.max_context = engine.max_context
        self.default_temperature = engine.default_temperature
        self._stream: Any = None

    def generate(self, tokens: Sequence[int], **options: Any) -> Iterator[int]:
        self._stream = self.engine.generate(tokens, **options)
        return self._stream

    def close(self) -> None:
        """End the current stream (the model stops sampling for this request)."""
        close = getattr(self._stream, "close", None)
        if close is not None:
            # A plain generator running in the agent's thread refuses; it stops by itself
            # once the agent stops reading.
            with contextlib.suppress(ValueError):
                close()

    def cancel(self) -> None:
        self.close()

    @property
    def last_stats(self) -> GenerationStats | None:
        stats = getattr(self._stream, "stats", None)
        return stats if stats is not None else self.engine.last_stats


class ClientFunction(Tool):
    """A function tool the API client declared and runs itself."""

    in_system_message = False
    runs_in_caller = True

    def __init__(self, name: str, description: str | None, parameters: dict | None) -> None:
        self.function_name = name
        self.name = f"functions.{name}"
        self.description = ToolDescription.new(name, description or "", parameters or None)

    def namespace(self) -> ToolNamespaceConfig:
        return ToolNamespaceConfig(name="functions", tools=[self.description])

    def handles(self, recipient: str) -> bool:
        return recipient == self.name

    async def call(self, message: Message) -> list[Message]:
        # Not reached: a call to it ends the run (stop_reason "tool_calls").
        raise ToolError(f"{self.name} is run by the client")


def user_message(text: str) -> Message:
    return Message.from_role_and_content(Role.USER, text)


def assistant_message(text: str, channel: str) -> Message:
    return Message.from_role_and_content(Role.ASSISTANT, text).with_channel(channel)


def function_call_message(name: str, arguments: str) -> Message:
    return (
        Message.from_role_and_content(Role.ASSISTANT, arguments)
        .with_channel("commentary")
        .with_recipient(f"functions.{name}")
        .with_content_type("<|constrain|>json")
    )


def function_output_message(name: str, output: str) -> Message:
    return tool_message(function_call_message(name, ""), output)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


async def run_agent(agent: Agent, request: Request) -> AsyncIterator[Event]:
    """Continue `agent`'s conversation, yielding its events. When the client goes away the
    run stops at once: the engine stream is closed (freeing its batch slot) and the
    request's tools are closed (sandboxes removed)."""
    engine = agent.engine
    assert isinstance(engine, RequestEngine)
    gone = asyncio.create_task(disconnected(request))
    events = agent.stream(None)
    step: asyncio.Future[Event] | None = None
    try:
        while True:
            step = asyncio.ensure_future(anext(events))
            await asyncio.wait({step, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                return
            try:
                event = step.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        engine.close()
        gone.cancel()
        if step is not None and not step.done():
            step.cancel()
            with contextlib.suppress(BaseException):
                await step
        await events.aclose()
        await agent.aclose()


async def disconnected(request: Request) -> None:
    """Returns when the client has gone away."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
