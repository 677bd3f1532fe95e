"""`POST /v1/responses`: the Responses API over the agent loop.

Reasoning, messages and the client's function calls become output items; the browser and
python tools run here, their calls shown as `web_search_call` / `code_interpreter_call`
items, and browser citations in the answer become `url_citation` annotations. Responses
are kept (bounded) for `previous_response_id`. A stream carries the full event sequence:
`response.created`, `in_progress`, per item `output_item.added`, content parts, deltas,
the `.done` events, and `response.completed` / `incomplete` / `failed`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent.events import (
    AnswerDelta,
    CommentaryDelta,
    Done,
    Event,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolResult,
)
from agent.harmony import Message
from agent.result import RunResult
from agent.server.body import parse_body
from agent.server.chat import FUNCTION_NAME
from agent.server.errors import APIError, invalid_fields
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
from agent.server.sse import event_stream, sse
from agent.server.store import StoredResponse
from tools.base import Tool

# Responses API tool types that name the builtin tools.
BUILTIN_TYPES = {
    "web_search": "browser",
    "web_search_preview": "browser",
    "browser_search": "browser",
    "code_interpreter": "python",
}


class Text(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["input_text", "output_text", "text", "reasoning_text", "summary_text"]
    text: str


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[Text]

    @property
    def text(self) -> str:
        return (
            self.content if isinstance(self.content, str) else "".join(t.text for t in self.content)
        )


class FunctionCallItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[Text]

    @property
    def text(self) -> str:
        return self.output if isinstance(self.output, str) else "".join(t.text for t in self.output)


class ReasoningItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["reasoning"]
    content: list[Text] | None = None
    summary: list[Text] = []


ITEM_TYPES: dict[str, type[BaseModel]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
    "reasoning": ReasoningItem,
}


class FunctionToolDef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Reasoning(BaseModel):
    model_config = ConfigDict(extra="ignore")
    effort: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[dict[str, Any]] = []
    tool_choice: Any = "auto"
    reasoning: Reasoning | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool = False
    store: bool = True
    metadata: dict[str, str] | None = None


def _items(raw: list[dict[str, Any]]) -> list[BaseModel]:
    items = []
    for index, data in enumerate(raw):
        kind = data.get("type", "message")
        if kind not in ITEM_TYPES:
            raise APIError(
                400,
                f"input[{index}]: items of type {kind!r} are not supported; send messages, "
                "function_call, function_call_output or reasoning items",
                param=f"input.{index}.type",
            )
        try:
            items.append(ITEM_TYPES[kind].model_validate(data))
        except ValidationError as exc:
            error = invalid_fields(exc)
            error.param = f"input.{index}.{error.param}" if error.param else f"input.{index}"
            raise error from None
    return items


def _tools(raw: list[dict[str, Any]]) -> tuple[set[str], list[ClientFunction]]:
    builtin: set[str] = set()
    functions: list[ClientFunction] = []
    for index, data in enumerate(raw):
        kind = data.get("type")
        if kind in BUILTIN_TYPES:
            builtin.add(BUILTIN_TYPES[kind])
        elif kind == "function":
            try:
                tool = FunctionToolDef.model_validate(data)
            except ValidationError as exc:
                error = invalid_fields(exc)
                error.param = f"tools.{index}.{error.param}"
                raise error from None
            functions.append(ClientFunction(tool.name, tool.description, tool.parameters))
        else:
            raise APIError(
                400,
                f"tools[{index}]: the tool type {kind!r} is not supported; use function, "
                "web_search or code_interpreter",
                param=f"tools.{index}.type",
            )
    return builtin, functions


def _conversation(
    items: list[BaseModel], history: list[Message], earlier_output: list[dict[str, Any]]
) -> tuple[list[str], list[Message]]:
    """(instructions from system/developer items, the conversation with the items added)."""
    names = {o["call_id"]: o["name"] for o in earlier_output if o.get("type") == "function_call"}
    instructions: list[str] = []
    messages = list(history)
    for index, item in enumerate(items):
        if isinstance(item, MessageItem):
            if item.role in ("system", "developer"):
                instructions.append(item.text)
            elif item.role == "user":
                messages.append(user_message(item.text))
            else:
                messages.append(assistant_message(item.text, "final"))
        elif isinstance(item, ReasoningItem):
            text = "".join(t.text for t in item.content or item.summary)
            messages.append(assistant_message(text, "analysis"))
        elif isinstance(item, FunctionCallItem):
            names[item.call_id] = item.name
            messages.append(function_call_message(item.name, item.arguments))
        elif isinstance(item, FunctionCallOutputItem):
            if item.call_id not in names:
                raise APIError(
                    400,
                    f"input[{index}]: no function call with call_id {item.call_id!r} in this "
                    "input or the previous response",
                    param=f"input.{index}.call_id",
                )
            messages.append(function_output_message(names[item.call_id], item.text))
    return instructions, messages


async def create_response(request: Request) -> Response:
    state: ServerState = request.app.state.server
    body = await parse_body(request, ResponsesRequest, state.limits.max_body_bytes)
    state.check_model(body.model)
    history: list[Message] = []
    earlier_output: list[dict[str, Any]] = []
    if body.previous_response_id is not None:
        previous = state.store.get(body.previous_response_id)
        if previous is None:
            raise APIError(
                404,
                f"no response with id {body.previous_response_id!r} (unknown, or no longer "
                "kept by this server)",
                code="response_not_found",
                param="previous_response_id",
            )
        history, earlier_output = previous.messages, previous.response["output"]
    if isinstance(body.input, str):
        items = _items([{"role": "user", "content": body.input}])
    else:
        items = _items(body.input)
    builtin, functions = _tools(body.tools)
    if body.tool_choice == "none":
        builtin, functions = set(), []
    extra_instructions, messages = _conversation(items, history, earlier_output)
    instructions = "\n\n".join([*filter(None, [body.instructions]), *extra_instructions])
    release = state.admit()
    try:
        tools = state.tools_for(builtin, functions)
        agent = state.agent(
            tools,
            instructions=instructions,
            effort=body.reasoning.effort if body.reasoning else None,
            max_tokens=body.max_output_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            messages=messages,
        )
    except BaseException:
        release()
        raise
    run = _ResponseRun(state, body, tools, {f.name for f in functions})
    events = run.events(run_agent(agent, request), agent)
    if body.stream:
        return event_stream(_sse_events(events), release)
    try:
        async for _ in events:
            pass
        return JSONResponse(run.response)
    finally:
        release()


async def get_response(request: Request) -> Response:
    state: ServerState = request.app.state.server
    response_id = request.path_params["response_id"]
    stored = state.store.get(response_id)
    if stored is None:
        raise APIError(404, f"no response with id {response_id!r}", code="response_not_found")
    return JSONResponse(stored.response)


async def _sse_events(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    async for event in events:
        yield sse(event, event["type"])


class _ResponseRun:
    """Turns agent events into Responses output items and stream events."""

    def __init__(
        self, state: ServerState, body: ResponsesRequest, tools: list[Tool], functions: set[str]
    ) -> None:
        self.state = state
        self.body = body
        self.tools = tools
        self.functions = functions
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None  # the item being written
        self.open_kind = ""
        self.calls: dict[str, dict[str, Any]] = {}  # agent call id -> its output item
        self.response = {
            "id": new_id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "error": None,
            "incomplete_details": None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": state.model_name,
            "output": self.output,
            "parallel_tool_calls": True,
            "previous_response_id": body.previous_response_id,
            "reasoning": {
                "effort": body.reasoning.effort if body.reasoning else None,
                "summary": None,
            },
            "store": body.store,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "text": {"format": {"type": "text"}},
            "tool_choice": body.tool_choice,
            "tools": body.tools,
            "truncation": "disabled",
            "usage": None,
            "metadata": body.metadata or {},
        }

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _snapshot(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.response))

    async def events(self, agent_events: AsyncIterator[Event], agent: Any) -> AsyncIterator[dict]:
        yield self._event("response.created", response=self._snapshot())
        yield self._event("response.in_progress", response=self._snapshot())
        result: RunResult | None = None
        async for event in agent_events:
            if isinstance(event, Done):
                result = event.result
                for out in self._recovered_answer(result):
                    yield out
            for out in self._on(event):
                yield out
        for out in self._close():
            yield out
        if result is None:  # the client went away: nothing to finish or keep
            return
        self._finish(result)
        if self.body.store:
            self.state.store.put(self.response["id"], StoredResponse(self.response, agent.messages))
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}
        yield self._event(
            kind.get(self.response["status"], "response.failed"), response=self._snapshot()
        )

    def _recovered_answer(self, result: RunResult) -> list[dict[str, Any]]:
        """The answer the lenient parser recovered where no text streamed (e.g. from a
        header that never got its `<|message|>`), as a message item of its own."""
        texts = [o["content"][0]["text"] for o in self.output if o["type"] == "message"]
        if result.stop_reason != "final" or result.final_output in texts:
            return []
        return [
            *self._ensure("recovered"),
            self._text_delta("response.output_text.delta", result.final_output),
        ]

    def _on(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, ReasoningDelta):
            return [
                *self._ensure("reasoning"),
                self._text_delta("response.reasoning_text.delta", event.text),
            ]
        if isinstance(event, AnswerDelta | CommentaryDelta):
            kind = "final" if isinstance(event, AnswerDelta) else "commentary"
            return [*self._ensure(kind), self._text_delta("response.output_text.delta", event.text)]
        if isinstance(event, ToolCallStarted):
            return self._call_started(event)
        if isinstance(event, ToolCallArgumentsDelta) and event.call_id in self.calls:
            item = self.calls[event.call_id]
            base = dict(item_id=item["id"], output_index=self.output.index(item))
            if item["type"] == "function_call":
                item["arguments"] += event.text
                return [
                    self._event("response.function_call_arguments.delta", delta=event.text, **base)
                ]
            if item["type"] == "code_interpreter_call":
                item["code"] += event.text
                return [
                    self._event(
                        "response.code_interpreter_call_code.delta", delta=event.text, **base
                    )
                ]
            return []
        if isinstance(event, ToolCallFinished) and event.call_id in self.calls:
            return self._call_finished(event)
        if isinstance(event, ToolResult) and event.call.call_id in self.calls:
            return self._call_result(event)
        return []

    # -- items --------------------------------------------------------------------------

    def _add(self, item: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        events = self._close()
        self.output.append(item)
        self.open, self.open_kind = item, kind
        events.append(
            self._event(
                "response.output_item.added",
                output_index=len(self.output) - 1,
                item=json.loads(json.dumps(item)),
            )
        )
        return events

    def _ensure(self, kind: str) -> list[dict[str, Any]]:
        """Open a reasoning or message item for text of `kind` unless one is open."""
        if self.open is not None and self.open_kind == kind:
            return []
        if kind == "reasoning":
            item = {
                "id": new_id("rs"),
                "type": "reasoning",
                "summary": [],
                "content": [],
                "status": "in_progress",
            }
            part = {"type": "reasoning_text", "text": ""}
        else:
            item = {
                "id": new_id("msg"),
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        events = self._add(item, kind)
        item["content"].append(part)
        events.append(
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=len(self.output) - 1,
                content_index=0,
                part=dict(part),
            )
        )
        return events

    def _text_delta(self, kind: str, text: str) -> dict[str, Any]:
        assert self.open is not None
        self.open["content"][0]["text"] += text
        extra = {"logprobs": []} if kind == "response.output_text.delta" else {}
        return self._event(
            kind,
            item_id=self.open["id"],
            output_index=len(self.output) - 1,
            content_index=0,
            delta=text,
            **extra,
        )

    def _close(self) -> list[dict[str, Any]]:
        """Finish the open text item (tool call items finish with their call)."""
        item, self.open = self.open, None
        if item is None or item["type"] not in ("reasoning", "message"):
            return []
        index = self.output.index(item)
        part = item["content"][0]
        base = dict(item_id=item["id"], output_index=index, content_index=0)
        events = []
        if item["type"] == "reasoning":
            events.append(self._event("response.reasoning_text.done", text=part["text"], **base))
        else:
            for annotation in self._cite(part):
                events.append(
                    self._event(
                        "response.output_text.annotation.added",
                        annotation_index=part["annotations"].index(annotation),
                        annotation=annotation,
                        **base,
                    )
                )
            events.append(
                self._event("response.output_text.done", text=part["text"], logprobs=[], **base)
            )
        events.append(self._event("response.content_part.done", part=dict(part), **base))
        item["status"] = "completed"
        events.append(
            self._event(
                "response.output_item.done", output_index=index, item=json.loads(json.dumps(item))
            )
        )
        return events

    def _cite(self, part: dict[str, Any]) -> list[dict[str, Any]]:
        """Browser citations `【cursor†Lx-Ly】` become Markdown links with url_citation
        annotations over them."""
        browser = next((t for t in self.tools if t.name == "browser"), None)
        if browser is None:
            return []
        from tools.browser.citations import resolve_citations

        text, sources = resolve_citations(part["text"], browser.state)
        part["text"] = text
        for source in sources:
            link = f"[{source.number}]({source.link})"
            for match in re.finditer(re.escape(link), text):
                part["annotations"].append(
                    {
                        "type": "url_citation",
                        "start_index": match.start(),
                        "end_index": match.end(),
                        "url": source.url,
                        "title": source.title,
                    }
                )
        part["annotations"].sort(key=lambda a: a["start_index"])
        return list(part["annotations"])

    def _call_started(self, event: ToolCallStarted) -> list[dict[str, Any]]:
        recipient = event.recipient
        if recipient in self.functions:
            item = {
                "id": new_id("fc"),
                "type": "function_call",
                "call_id": new_id("call"),
                "name": recipient.removeprefix("functions."),
                "arguments": "",
                "status": "in_progress",
            }
            progress = None
        elif recipient.startswith("browser.") and any(t.name == "browser" for t in self.tools):
            item = {
                "id": new_id("ws"),
                "type": "web_search_call",
                "status": "in_progress",
                "action": {"type": "search", "query": ""},
            }
            progress = "response.web_search_call.in_progress"
        elif recipient == "python" and any(t.name == "python" for t in self.tools):
            item = {
                "id": new_id("ci"),
                "type": "code_interpreter_call",
                "status": "in_progress",
                "code": "",
                "container_id": "python",
                "outputs": None,
            }
            progress = "response.code_interpreter_call.in_progress"
        else:  # a tool that was not offered: the loop tells the model so
            return self._close()
        self.calls[event.call_id] = item
        events = self._add(item, "call")
        if progress:
            events.append(
                self._event(progress, item_id=item["id"], output_index=len(self.output) - 1)
            )
        return events

    def _call_finished(self, event: ToolCallFinished) -> list[dict[str, Any]]:
        item = self.calls[event.call_id]
        base = dict(item_id=item["id"], output_index=self.output.index(item))
        if item["type"] == "function_call":
            item["arguments"], item["status"] = event.arguments, "completed"
            self.open = None
            return [
                self._event(
                    "response.function_call_arguments.done", arguments=event.arguments, **base
                ),
                self._event(
                    "response.output_item.done", output_index=base["output_index"], item=dict(item)
                ),
            ]
        if item["type"] == "web_search_call":
            item["action"] = _browser_action(event.recipient, event.arguments)
            item["status"] = "searching"
            return [self._event("response.web_search_call.searching", **base)]
        item["code"], item["status"] = event.arguments, "interpreting"
        return [
            self._event("response.code_interpreter_call_code.done", code=event.arguments, **base),
            self._event("response.code_interpreter_call.interpreting", **base),
        ]

    def _call_result(self, event: ToolResult) -> list[dict[str, Any]]:
        item = self.calls[event.call.call_id]
        base = dict(item_id=item["id"], output_index=self.output.index(item))
        item["status"] = "failed" if event.call.is_error else "completed"
        if item["type"] == "code_interpreter_call":
            item["outputs"] = [{"type": "logs", "logs": event.call.output}]
        self.open = None
        done = f"response.{item['type']}.completed"
        return [
            self._event(done, **base),
            self._event(
                "response.output_item.done",
                output_index=base["output_index"],
                item=json.loads(json.dumps(item)),
            ),
        ]

    def _finish(self, result: RunResult) -> None:
        usage = result.usage
        self.response["usage"] = {
            "input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.reused_tokens or 0},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        }
        self.response["parser_recoveries"] = [r for t in result.turns for r in t.recoveries]
        if result.stop_reason in ("final", "tool_calls"):
            self.response["status"] = "completed"
        elif result.stop_reason == "error":
            self.response["status"] = "failed"
            self.response["error"] = {
                "code": "server_error",
                "message": f"the model failed: {result.error}",
            }
        else:
            self.response["status"] = "incomplete"
            reason = (
                "max_output_tokens"
                if result.stop_reason in ("max_tokens", "context_full")
                else result.stop_reason
            )
            self.response["incomplete_details"] = {"reason": reason}


def _browser_action(recipient: str, arguments: str) -> dict[str, Any]:
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        args = {}
    if not isinstance(args, dict):
        args = {}
    function = recipient.removeprefix("browser.")
    if function == "open":
        target = args.get("id")
        return {"type": "open_page", "url": target if isinstance(target, str) else None}
    if function == "find":
        return {"type": "find_in_page", "pattern": str(args.get("pattern", "")), "url": ""}
    return {"type": "search", "query": str(args.get("query", ""))}
