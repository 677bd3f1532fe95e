"""The agent loop: render the conversation, sample a turn, run the tool it calls, repeat.

One `Agent` is one session: its conversation grows across `run` calls, so a second task
is a follow-up question. The loop itself is `stream`; `arun` and `run` consume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agent.events import (
    AnswerDelta,
    CommentaryDelta,
    Done,
    Error,
    Event,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolResult,
    TurnEnd,
)
from agent.harmony import (
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    Role,
    StreamableParser,
    StreamState,
    SystemContent,
    ToolNamespaceConfig,
    load_harmony_encoding,
)
from agent.result import RunResult, StopReason, ToolCall, TurnStats, Usage
from tools.base import Tool, ToolError, tool_message

if TYPE_CHECKING:
    from runtime.engine import Engine

Effort = Literal["low", "medium", "high"]


class Agent:
    """A gpt-oss model with tools, keeping one conversation across `run` calls.

    `model` is an engine (anything with `generate`), a checkpoint path, or an `http(s)://`
    URL of a server (see `runtime.remote`). Limits end a run with `stop_reason` set:
    `max_turns` model turns, `max_tokens_per_turn` sampled tokens in one turn, `max_seconds`
    of wall time.
    """

    def __init__(
        self,
        model: Engine | str,
        tools: Sequence[Tool] = (),
        instructions: str | None = None,
        reasoning_effort: Effort | ReasoningEffort = "medium",
        *,
        max_turns: int = 20,
        max_tokens_per_turn: int = 8192,
        max_seconds: float | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        conversation_start_date: str | None = None,
    ) -> None:
        self.engine = load_engine(model) if isinstance(model, str) else model
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self.tools = list(tools)
        self.instructions = instructions
        self.reasoning_effort = reasoning_effort
        self.max_turns = max_turns
        self.max_tokens_per_turn = max_tokens_per_turn
        self.max_seconds = max_seconds
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.conversation_start_date = conversation_start_date or datetime.date.today().isoformat()
        self.encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
        # The session: user, assistant and tool messages; the system and developer
        # messages are rebuilt from the settings above for every turn.
        self.messages: list[Message] = []
        self.results: list[RunResult] = []
        self._call_count = 0
        self._runner: asyncio.Runner | None = None

    @property
    def reasoning_effort(self) -> ReasoningEffort:
        return self._effort

    @reasoning_effort.setter
    def reasoning_effort(self, value: Effort | ReasoningEffort | str) -> None:
        self._effort = parse_effort(value)

    # -- the conversation -----------------------------------------------------------------

    def header_messages(self) -> list[Message]:
        """The system message (identity, date, effort, builtin tools) and, when there are
        instructions or function tools, the developer message."""
        system = (
            SystemContent.new()
            .with_reasoning_effort(self.reasoning_effort)
            .with_conversation_start_date(self.conversation_start_date)
        )
        developer = DeveloperContent.new()
        if self.instructions:
            developer.with_instructions(self.instructions)
        for namespace in _merged_namespaces(self.tools, in_system=True):
            system.with_tools(namespace)
        for namespace in _merged_namespaces(self.tools, in_system=False):
            developer.with_tools(namespace)
        header = [Message.from_role_and_content(Role.SYSTEM, system)]
        if developer.instructions is not None or developer.tools:
            header.append(Message.from_role_and_content(Role.DEVELOPER, developer))
        return header

    @property
    def conversation(self) -> Conversation:
        """The whole session as a harmony conversation, chain of thought included."""
        return Conversation.from_messages(self.header_messages() + self.messages)

    def prompt_tokens(self) -> list[int]:
        """The prompt for the next assistant turn.

        The renderer drops chain of thought only while the latest assistant message is a
        final answer; once a follow-up question leads to a tool call, earlier turns'
        analysis would come back. The model was trained without it, so analysis before
        the last final answer is left out here.
        """
        last_final = max(
            (i for i, m in enumerate(self.messages) if _is_final(m)),
            default=-1,
        )
        kept = [
            m
            for i, m in enumerate(self.messages)
            if not (i < last_final and m.channel == "analysis")
        ]
        conversation = Conversation.from_messages(self.header_messages() + kept)
        return self.encoding.render_conversation_for_completion(conversation, Role.ASSISTANT)

    def reset(self) -> None:
        """Forget the conversation (tools keep their state)."""
        self.messages.clear()
        self.results.clear()

    # -- running --------------------------------------------------------------------------

    def run(self, task: str) -> RunResult:
        """Run `task` to its end (blocking). Uses one event loop per agent, so tools that
        hold connections keep working across calls."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self.arun(task))

    async def arun(self, task: str) -> RunResult:
        async with contextlib.aclosing(self.stream(task)) as events:
            async for event in events:
                if isinstance(event, Done):
                    return event.result
        raise AssertionError("stream ended without Done")  # pragma: no cover

    async def stream(self, task: str | None) -> AsyncIterator[Event]:
        """Run `task`, yielding events as they happen; the last one is `Done`. With None the
        model continues the conversation as it stands (e.g. after the caller appended the
        results of calls it ran itself)."""
        started = time.monotonic()
        deadline = started + self.max_seconds if self.max_seconds is not None else None
        if task is not None:
            self.messages.append(Message.from_role_and_content(Role.USER, task))
        run = _Run()
        try:
            for turn in range(self.max_turns):
                calls: list[tuple[str, Message]] = []
                async for event in self._turn(turn, run, deadline, calls):
                    yield event
                if run.stop_reason is None and any(self._for_caller(c) for _, c in calls):
                    run.stop_reason = "tool_calls"  # the caller runs them and continues
                if run.stop_reason is not None:
                    yield TurnEnd(run.turns[-1])
                    break
                for call_id, call in calls:
                    record = await self._dispatch(call_id, call, turn, deadline)
                    if record is None:
                        run.stop_reason = "timeout"
                        break
                    run.tool_calls.append(record)
                    run.turns[-1].tool_seconds += record.seconds
                    yield ToolResult(record)
                yield TurnEnd(run.turns[-1])
                if run.stop_reason is not None:
                    break
            else:
                run.stop_reason = "max_turns"
        except asyncio.CancelledError:
            await self.aclose()
            raise
        except Exception as exc:  # the engine failed: end the run and say why
            run.stop_reason, run.error = "error", f"{type(exc).__name__}: {exc}"
            yield Error(run.error)
        result = RunResult(
            final_output=run.answer,
            stop_reason=run.stop_reason,
            conversation=self.conversation,
            tool_calls=run.tool_calls,
            turns=run.turns,
            seconds=time.monotonic() - started,
            error=run.error,
        )
        self.results.append(result)
        yield Done(result)

    async def _turn(
        self, turn: int, run: _Run, deadline: float | None, calls: list[tuple[str, Message]]
    ) -> AsyncIterator[Event]:
        """Sample one assistant turn, yielding deltas; sets `run.stop_reason` when the run
        ends here and fills `calls` with the tool calls to make."""
        prompt = self.prompt_tokens()
        # Engines with a fixed context (the local model's `max_context`) get no more than fits.
        room = getattr(self.engine, "max_context", None)
        max_tokens = self.max_tokens_per_turn
        if isinstance(room, int):
            max_tokens = min(max_tokens, room - len(prompt))
        parser = StreamableParser(self.encoding, Role.ASSISTANT, strict=False)
        stops = self.encoding.stop_tokens_for_assistant_actions()
        usage = Usage(prompt_tokens=len(prompt))
        stats = TurnStats(turn=turn, usage=usage)
        run.turns.append(stats)
        if max_tokens <= 0:
            run.stop_reason = "context_full"
            return
        started = time.monotonic()
        last_token: int | None = None
        call_ids: list[str] = []
        # A different seed per turn, so a fixed seed does not replay one sampling stream.
        seed = None if self.seed is None else self.seed + turn
        tokens = _TokenStream(
            self.engine,
            prompt,
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seed,
            stop_tokens=stops,
        )
        try:
            while usage.completion_tokens < max_tokens:
                token = await tokens.next(_remaining(deadline))
                if token is None:
                    break
                if stats.first_token_seconds is None:
                    stats.first_token_seconds = time.monotonic() - started
                usage.completion_tokens += 1
                last_token = token
                before = parser.state
                parser.process(token)
                in_content = parser.state is StreamState.CONTENT
                was_in_content = before is StreamState.CONTENT
                if in_content and was_in_content and parser.current_channel == "analysis":
                    usage.reasoning_tokens += 1
                opened = in_content and not was_in_content
                if opened and parser.current_recipient is not None:
                    call_ids.append(self._new_call_id())
                    yield ToolCallStarted(call_ids[-1], parser.current_recipient)
                delta = parser.last_content_delta
                if delta:
                    yield _delta_event(parser, delta, call_ids[-1] if call_ids else "")
                if token in stops:
                    break
        except TimeoutError:
            run.stop_reason = "timeout"
        finally:
            await tokens.aclose()
        parser.process_eos()
        stats.generate_seconds = time.monotonic() - started
        # Engines that keep a KV cache say how much of the prompt they reused
        # (runtime.engine.GenerationStats); others report nothing.
        engine_stats = getattr(self.engine, "last_stats", None)
        usage.prefilled_tokens = getattr(engine_stats, "prefilled", None)
        usage.reused_tokens = getattr(engine_stats, "reused", None)
        stats.recoveries = [str(r) for r in parser.recoveries]
        self.messages.extend(parser.messages)
        for message in parser.messages:
            if message.recipient is not None:
                call_id = call_ids.pop(0) if call_ids else self._new_call_id()
                calls.append((call_id, message))
                yield ToolCallFinished(call_id, message.recipient, message.text)
        if run.stop_reason is None and last_token not in stops:
            run.stop_reason = "max_tokens"
        elif run.stop_reason is None and not calls:
            run.stop_reason = "final"
            run.answer = _answer(parser.messages)

    def _new_call_id(self) -> str:
        self._call_count += 1
        return f"call_{self._call_count}"

    def _for_caller(self, call: Message) -> bool:
        tool = next((t for t in self.tools if t.handles(call.recipient or "")), None)
        return tool is not None and tool.runs_in_caller

    async def _dispatch(
        self, call_id: str, call: Message, turn: int, deadline: float | None
    ) -> ToolCall | None:
        """Run one tool call; its result (or what went wrong) joins the conversation.
        Returns None when the run's wall time ran out first."""
        recipient = call.recipient or ""
        tool = next((t for t in self.tools if t.handles(recipient)), None)
        started = time.monotonic()
        is_error = True
        if tool is None:
            names = ", ".join(t.name for t in self.tools) or "none"
            replies = [
                tool_message(call, f"Error: there is no tool {recipient!r}. Available: {names}.")
            ]
        else:
            try:
                replies = await asyncio.wait_for(tool.call(call), _remaining(deadline))
                is_error = False
            except TimeoutError:
                return None
            except ToolError as exc:
                replies = [tool_message(call, f"Error: {exc}")]
            except Exception as exc:  # a crashed tool must not end the agent
                replies = [tool_message(call, f"Error: {type(exc).__name__}: {exc}")]
        self.messages.extend(replies)
        return ToolCall(
            call_id=call_id,
            turn=turn,
            recipient=recipient,
            arguments=call.text,
            output="\n".join(m.text for m in replies),
            is_error=is_error,
            seconds=time.monotonic() - started,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every tool (containers, connections). Safe to call twice."""
        for tool in self.tools:
            await tool.aclose()

    def close(self) -> None:
        """Close tools from sync code, on the loop `run` used."""
        runner = self._runner or asyncio.Runner()
        try:
            runner.run(self.aclose())
        finally:
            runner.close()
            self._runner = None

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transcripts ----------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the session (conversation and every run's stats) as JSON."""
        from agent.transcript import save_transcript

        return save_transcript(self, path)

    @classmethod
    def resume(
        cls, path: str | Path, model: Engine | str, tools: Sequence[Tool] = (), **kwargs: Any
    ) -> Agent:
        """An agent that continues the session saved at `path`."""
        from agent.transcript import load_transcript

        return load_transcript(path, model=model, tools=tools, **kwargs)


@dataclass
class _Run:
    stop_reason: StopReason | None = None
    answer: str = ""
    error: str | None = None

    def __post_init__(self) -> None:
        self.tool_calls: list[ToolCall] = []
        self.turns: list[TurnStats] = []


class _TokenStream:
    """An engine's blocking token iterator, pumped by a thread into the event loop, so the
    loop stays responsive (deltas, cancellation, deadlines) while the model samples."""

    _END = object()

    def __init__(self, engine: Engine, prompt: list[int], **options: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._pump, args=(engine, prompt, options), daemon=True
        )
        self._thread.start()

    def _pump(self, engine: Engine, prompt: list[int], options: dict[str, Any]) -> None:
        generator = None
        try:
            generator = engine.generate(prompt, **options)
            for token in generator:
                self._put(token)
                if self._stop.is_set():
                    break
        except BaseException as exc:
            self._put(_Failure(exc))
        finally:
            close = getattr(generator, "close", None)
            if close is not None:
                close()
            self._put(self._END)

    def _put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is gone; nobody is listening
            self._stop.set()

    async def next(self, timeout: float | None) -> int | None:
        """The next token; None at the end; raises TimeoutError or the engine's error."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is self._END:
            return None
        if isinstance(item, _Failure):
            raise item.error
        return item

    async def aclose(self, timeout: float = 30.0) -> None:
        """Stop the engine and wait for its thread: no model code may still run once the turn
        is over (a daemon thread inside torch at interpreter exit aborts the process)."""
        self._stop.set()
        await asyncio.to_thread(self._thread.join, timeout)


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _delta_event(parser: StreamableParser, text: str, call_id: str | None) -> Event:
    if parser.current_recipient is not None:
        return ToolCallArgumentsDelta(call_id or "", text)
    channel = parser.current_channel
    if channel == "analysis":
        return ReasoningDelta(text)
    if channel == "commentary":
        return CommentaryDelta(text)
    return AnswerDelta(text)


def _answer(messages: list[Message]) -> str:
    """The final-channel text; a message that lost its channel (a malformed answer, a bare
    refusal) still counts when nothing better is there."""
    finals = [m.text for m in messages if m.channel == "final"]
    if finals:
        return finals[-1]
    others = [m.text for m in messages if m.channel != "analysis"]
    return others[-1] if others else ""


def _is_final(message: Message) -> bool:
    return message.author.role == Role.ASSISTANT and message.channel == "final"


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _merged_namespaces(tools: Sequence[Tool], *, in_system: bool) -> list[ToolNamespaceConfig]:
    """One namespace per name: function tools each bring a one-tool `functions` namespace."""
    merged: dict[str, ToolNamespaceConfig] = {}
    for tool in tools:
        if tool.in_system_message != in_system:
            continue
        namespace = tool.namespace()
        if namespace.name in merged:
            merged[namespace.name].tools.extend(namespace.tools)
        else:
            merged[namespace.name] = namespace.model_copy(deep=True)
    return list(merged.values())


def parse_effort(value: Effort | ReasoningEffort | str) -> ReasoningEffort:
    """`"low"`, `"medium"`, `"high"` (any case) or a `ReasoningEffort`."""
    if isinstance(value, ReasoningEffort):
        return value
    try:
        return ReasoningEffort(str(value).capitalize())
    except ValueError:
        raise ValueError(f"unknown reasoning effort {value!r}: use low, medium or high") from None


def load_engine(model: str) -> Engine:
    """An engine for a model string: an `http(s)://` server URL or a checkpoint path."""
    if model.startswith(("http://", "https://")):
        from runtime.remote import connect

        return connect(model)
    try:
        from runtime import load_model  # type: ignore[attr-defined]
    except ImportError as exc:
        raise RuntimeError(
            "the local runtime (runtime.load_model) is not available in this install; "
            "point the agent at a server instead, e.g. model='http://localhost:8000'"
        ) from exc
    return load_model(model)
