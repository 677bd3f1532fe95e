"""`POST /v1/chat/completions`: chat messages in, the answer out, with the model's
reasoning apart in `reasoning_content` and the client's function calls in `tool_calls`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.events import (
    AnswerDelta,
    CommentaryDelta,
    Done,
    Error,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from agent.harmony import Message
from agent.result import RunResult
from agent.server.body import parse_body
from agent.server.errors import APIError
from agent.server.session import (
    ClientFunction,
    ServerState,
    assistant_message,
    function_call_message,
    function_output_message,
    new_id,
    run_agent,
    user_message,
)
from agent.server.sse import DONE, event_stream, sse

FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class Function(BaseModel):
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class FunctionToolDef(BaseModel):
    type: Literal["function"]
    function: Function


class CalledFunction(BaseModel):
    name: str
    arguments: str = ""


class ToolCallIn(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text", "input_text", "output_text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[FunctionToolDef] | None = None
    tool_choice: Literal["auto", "none"] | dict | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


def to_harmony(messages: list[ChatMessage]) -> tuple[str | None, list[Message]]:
    """(developer instructions from system/developer messages, the conversation)."""
    instructions: list[str] = []
    conversation: list[Message] = []
    names: dict[str, str] = {}
    for index, m in enumerate(messages):
        if m.role in ("system", "developer"):
            instructions.append(m.text)
        elif m.role == "user":
            conversation.append(user_message(m.text))
        elif m.role == "assistant":
            if m.reasoning_content:
                conversation.append(assistant_message(m.reasoning_content, "analysis"))
            if m.text:
                conversation.append(assistant_message(m.text, "final"))
            for call in m.tool_calls or []:
                names[call.id] = call.function.name
                conversation.append(
                    function_call_message(call.function.name, call.function.arguments)
                )
        else:
            name = names.get(m.tool_call_id or "") or m.name
            if name is None:
                raise APIError(
                    400,
                    f"messages[{index}]: a tool message must answer a tool call: its "
                    "tool_call_id names no earlier assistant tool call",
                    param=f"messages.{index}.tool_call_id",
                )
            conversation.append(function_output_message(name, m.text))
    return "\n\n".join(instructions) or None, conversation


def usage(result: RunResult | None) -> dict[str, Any]:
    u = result.usage if result is not None else None
    prompt = u.prompt_tokens if u else 0
    completion = u.completion_tokens if u else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": (u.reused_tokens or 0) if u else 0},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens if u else 0},
    }


def finish_reason(result: RunResult) -> str:
    if result.stop_reason == "tool_calls":
        return "tool_calls"
    if result.stop_reason == "final":
        return "stop"
    return "length"


async def create_chat_completion(request: Request) -> Response:
    state: ServerState = request.app.state.server
    body = await parse_body(request, ChatRequest, state.limits.max_body_bytes)
    state.check_model(body.model)
    instructions, messages = to_harmony(body.messages)
    functions = (
        []
        if body.tool_choice == "none"
        else [
            ClientFunction(t.function.name, t.function.description, t.function.parameters)
            for t in body.tools or []
        ]
    )
    agent = state.agent(
        state.tools_for((), functions),
        instructions=instructions,
        effort=body.reasoning_effort,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        messages=messages,
    )
    release = state.admit()
    run = _ChatRun(state, body, {f.name for f in functions})
    if body.stream:
        return event_stream(run.chunks(run_agent(agent, request)), release)
    try:
        return JSONResponse(await run.whole(run_agent(agent, request)))
    finally:
        release()


class _ChatRun:
    """Agent events as one chat completion, whole or as chunks."""

    def __init__(self, state: ServerState, body: ChatRequest, functions: set[str]) -> None:
        self.state = state
        self.body = body
        self.functions = functions
        self.id = new_id("chatcmpl")
        self.created = int(time.time())
        self.calls: dict[str, dict[str, Any]] = {}  # agent call id -> the API's tool call

    def _delta(self, event: Any) -> dict[str, Any] | None:
        """The message delta an event adds, or None."""
        if isinstance(event, ReasoningDelta):
            return {"reasoning_content": event.text}
        if isinstance(event, AnswerDelta | CommentaryDelta):
            return {"content": event.text}
        if isinstance(event, ToolCallStarted) and event.recipient in self.functions:
            call = {
                "index": len(self.calls),
                "id": new_id("call"),
                "type": "function",
                "function": {"name": event.recipient.removeprefix("functions."), "arguments": ""},
            }
            self.calls[event.call_id] = call
            return {"tool_calls": [call]}
        if isinstance(event, ToolCallArgumentsDelta) and event.call_id in self.calls:
            call = self.calls[event.call_id]
            call["function"]["arguments"] += event.text
            return {"tool_calls": [{"index": call["index"], "function": {"arguments": event.text}}]}
        if isinstance(event, ToolCallFinished) and event.call_id in self.calls:
            self.calls[event.call_id]["function"]["arguments"] = event.arguments
        return None

    def _object(self, kind: str, choices: list[dict], result: RunResult | None) -> dict:
        data: dict[str, Any] = {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.state.model_name,
            "choices": choices,
        }
        if kind == "chat.completion" or choices == []:
            data["usage"] = usage(result)
        if result is not None:
            data["parser_recoveries"] = [r for t in result.turns for r in t.recoveries]
        return data

    async def whole(self, events: AsyncIterator[Any]) -> dict[str, Any]:
        reasoning, content = "", ""
        result: RunResult | None = None
        async for event in events:
            delta = self._delta(event) or {}
            reasoning += delta.get("reasoning_content", "")
            content += delta.get("content", "")
            if isinstance(event, Done):
                result = event.result
        if result is None:  # the client went away
            return {}
        if result.stop_reason == "error":
            raise APIError(500, f"the model failed: {result.error}", code="engine_error")
        if result.stop_reason == "final":
            content = result.final_output  # what the parser made of it, recoveries included
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content or (None if self.calls else ""),
            "reasoning_content": reasoning or None,
        }
        if self.calls:
            message["tool_calls"] = list(self.calls.values())
        choice = {
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(result),
            "logprobs": None,
        }
        return self._object("chat.completion", [choice], result)

    async def chunks(self, events: AsyncIterator[Any]) -> AsyncIterator[str]:
        kind = "chat.completion.chunk"
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        yield sse(self._object(kind, [first], None))
        streamed = ""
        async for event in events:
            delta = self._delta(event)
            streamed += (delta or {}).get("content", "")
            if isinstance(event, Done):
                missing = _unstreamed(event.result, streamed)
                if missing:
                    yield sse(
                        self._object(
                            kind,
                            [{"index": 0, "delta": {"content": missing}, "finish_reason": None}],
                            None,
                        )
                    )
            if delta is not None:
                yield sse(
                    self._object(kind, [{"index": 0, "delta": delta, "finish_reason": None}], None)
                )
            elif isinstance(event, Error):
                error = APIError(500, f"the model failed: {event.message}", code="engine_error")
                yield sse(error.body())
            elif isinstance(event, Done):
                result = event.result
                last = {"index": 0, "delta": {}, "finish_reason": finish_reason(result)}
                yield sse(self._object(kind, [last], result))
                if self.body.stream_options and self.body.stream_options.include_usage:
                    yield sse(self._object(kind, [], result))
        yield DONE


def _unstreamed(result: RunResult, streamed: str) -> str:
    """Answer text the lenient parser recovered that no delta carried."""
    if result.stop_reason != "final" or not result.final_output.startswith(streamed):
        return ""
    return result.final_output[len(streamed) :]
