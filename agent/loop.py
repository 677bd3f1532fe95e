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
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agent.events import Done, Error, Event, ToolResult, TurnEnd
from agent.harmony import (
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolNamespaceConfig,
    load_harmony_encoding,
)
from agent.result import RunResult, StopReason, ToolCall, TurnStats, Usage
from agent.turn import CallRequest, TurnOutcome, TurnReader
from runtime.engine import Sampling
from tools.base import Tool, ToolError, tool_message
from tools.functions import to_tool

if TYPE_CHECKING:
    from runtime.engine import Engine

Effort = Literal["low", "medium", "high"]


class Agent:
    """A gpt-oss model with tools, keeping one conversation across `run` calls.

    `model` is an engine (a `runtime.engine.Engine`: `generate`, `max_context`,
    `last_stats`), a checkpoint path, or an `http(s)://` URL of a server (see
    `runtime.remote`). Limits end a run with `stop_reason` set:
    `max_turns` model turns, `max_tokens_per_turn` sampled tokens in one turn, `max_seconds`
    of wall time.
    """

    def __init__(
        self,
        model: Engine | str,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        instructions: str | None = None,
        reasoning_effort: Effort | ReasoningEffort = "medium",
        *,
        max_turns: int = 20,
        max_tokens_per_turn: int = 8192,
        max_seconds: float | None = None,
        temperature: float | None = None,
        top_p: float = 1.0,
        seed: int | None = None,
        conversation_start_date: str | None = None,
    ) -> None:
        self.engine = load_engine(model) if isinstance(model, str) else _checked(model)
        self.model_name = model if isinstance(model, str) else type(model).__name__
        self.tools = [to_tool(tool) for tool in tools]  # fails here, naming a bad function
        self.instructions = instructions
        self.reasoning_effort = reasoning_effort
        self.max_turns = max_turns
        self.max_tokens_per_turn = max_tokens_per_turn
        self.max_seconds = max_seconds
        # None: the model's own default (1.0 for gpt-oss, greedy for the nano demo model).
        self.temperature = self.engine.default_temperature if temperature is None else temperature
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
        self._runner_finalizer: weakref.finalize | None = None

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
        hold connections keep working across calls; it is closed with the agent, at exit,
        or when the agent is collected."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "Agent.run() blocks, so it cannot run inside an event loop that is already "
                "running (Jupyter, async code): use `await agent.arun(...)` there."
            )
        if self._runner is None:
            self._runner = asyncio.Runner()
            self._runner_finalizer = weakref.finalize(self, _close_runner, self._runner)
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
        results of calls it ran itself).

        A run that does not reach `Done` (cancelled, or the caller stopped iterating) leaves
        the conversation as it was before it: no dangling question, no half-finished turn.
        """
        started = time.monotonic()
        deadline = started + self.max_seconds if self.max_seconds is not None else None
        before = len(self.messages)
        if task is not None:
            self.messages.append(Message.from_role_and_content(Role.USER, task))
        run = _Run()
        try:
            try:
                for turn in range(self.max_turns):
                    async for event in self._turn(turn, run, deadline):
                        yield event
                    if run.call is not None and self._for_caller(run.call.message):
                        run.stop_reason = "tool_calls"  # the caller runs it and continues
                    elif run.call is not None:
                        record = await self._dispatch(run.call, turn, deadline)
                        if record is None:
                            run.stop_reason = "timeout"
                        else:
                            run.tool_calls.append(record)
                            run.turns[-1].tool_seconds += record.seconds
                            yield ToolResult(record)
                    yield TurnEnd(run.turns[-1])
                    if run.stop_reason is not None:
                        break
                else:
                    run.stop_reason = "max_turns"
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
            run.finished = True
            yield Done(result)
        finally:
            if not run.finished:
                del self.messages[before:]

    async def _turn(self, turn: int, run: _Run, deadline: float | None) -> AsyncIterator[Event]:
        """Sample one assistant turn, yielding its events: the pump around `TurnReader`.
        Leaves the call to make in `run.call`, or sets `run.stop_reason`."""
        prompt = self.prompt_tokens()
        max_tokens = self.max_tokens_per_turn
        if self.engine.max_context is not None:
            max_tokens = min(max_tokens, self.engine.max_context - len(prompt))
        stats = TurnStats(turn=turn, usage=Usage(prompt_tokens=len(prompt)))
        run.turns.append(stats)
        run.call = None
        if max_tokens <= 0:
            run.stop_reason = "context_full"
            return
        stops = self.encoding.stop_tokens_for_assistant_actions()
        reader = TurnReader(self.encoding, stops, self._new_call_id)
        # A different seed per turn, so a fixed seed does not replay one sampling stream.
        seed = None if self.seed is None else self.seed + turn
        sampling = Sampling(max_tokens, self.temperature, self.top_p, seed, frozenset(stops))
        started = time.monotonic()
        timed_out = stopped = False
        tokens = ThreadedTokens(self.engine, prompt, sampling)
        try:
            while not reader.done and reader.tokens < max_tokens:
                token = await tokens.next(_remaining(deadline))
                if token is None:
                    break
                if stats.first_token_seconds is None:
                    stats.first_token_seconds = time.monotonic() - started
                stopped = token in stops
                for event in reader.feed(token):
                    yield event
        except TimeoutError:
            timed_out = True
        finally:
            # Past a stop token the engine only finishes up (a server's usage report);
            # otherwise (cancelled, timed out, a call closed by <|end|>) it is cut short.
            await tokens.aclose(abandon=not stopped)
        stats.generate_seconds = time.monotonic() - started
        outcome = reader.finish()
        for event in outcome.events:
            yield event
        self._record(outcome, stats)
        if outcome.end == "call":
            run.call = outcome.call
        elif outcome.end == "answer":
            run.stop_reason, run.answer = "final", outcome.answer
        elif outcome.end == "cut":
            run.stop_reason = "timeout" if timed_out else "max_tokens"

    def _record(self, outcome: TurnOutcome, stats: TurnStats) -> None:
        """The turn's messages join the conversation; its counts go into `stats`."""
        self.messages.extend(outcome.messages)
        usage = stats.usage
        usage.completion_tokens = outcome.completion_tokens
        usage.reasoning_tokens = outcome.reasoning_tokens
        engine_stats = self.engine.last_stats
        if engine_stats is not None:
            usage.prefilled_tokens = engine_stats.prefilled
            usage.reused_tokens = engine_stats.reused
        stats.recoveries = outcome.recoveries
        stats.truncated_call = outcome.truncated_call

    def _new_call_id(self) -> str:
        self._call_count += 1
        return f"call_{self._call_count}"

    def _for_caller(self, call: Message) -> bool:
        tool = next((t for t in self.tools if t.handles(call.recipient or "")), None)
        return tool is not None and tool.runs_in_caller

    async def _dispatch(
        self, request: CallRequest, turn: int, deadline: float | None
    ) -> ToolCall | None:
        """Run one tool call; its result (or what went wrong) joins the conversation.
        Returns None when the run's wall time ran out first."""
        call_id, call = request.call_id, request.message
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
        """Close tools from sync code, on the loop `run` used, then that loop."""
        runner = self._runner or asyncio.Runner()
        try:
            runner.run(self.aclose())
        finally:
            if self._runner_finalizer is not None:
                self._runner_finalizer.detach()
            runner.close()
            self._runner = self._runner_finalizer = None

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
    call: CallRequest | None = None  # the call the last turn ended with
    finished: bool = False  # Done was reached
    tool_calls: list[ToolCall] = field(default_factory=list)
    turns: list[TurnStats] = field(default_factory=list)


class ThreadedTokens:
    """An engine's blocking token iterator, pumped by a thread into the event loop, so the
    loop stays responsive (deltas, cancellation, deadlines) while the model samples."""

    _END = object()

    def __init__(self, engine: Engine, prompt: list[int], sampling: Sampling) -> None:
        self._engine = engine
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._pump, args=(engine, prompt, sampling), daemon=True
        )
        self._thread.start()

    def _pump(self, engine: Engine, prompt: list[int], sampling: Sampling) -> None:
        generator = None
        try:
            generator = engine.generate(prompt, **sampling.options())
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

    async def aclose(self, abandon: bool, timeout: float = 30.0) -> None:
        """Stop the engine and wait for its thread: no model code may still run once the turn
        is over (a daemon thread inside torch at interpreter exit aborts the process).
        `abandon`: the generation is cut short, so the engine is told to stop now."""
        self._stop.set()
        if abandon and self._thread.is_alive():
            self._engine.cancel()
        await asyncio.to_thread(self._thread.join, timeout)


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _is_final(message: Message) -> bool:
    return message.author.role == Role.ASSISTANT and message.channel == "final"


def _checked(engine: Engine) -> Engine:
    """The engine, if it has what the loop reads (see `runtime.engine.Engine`)."""
    needed = ("generate", "max_context", "last_stats", "default_temperature", "cancel")
    missing = [name for name in needed if not hasattr(engine, name)]
    if missing:
        raise TypeError(
            f"{type(engine).__name__} is not an engine: it lacks {', '.join(missing)}. "
            "Subclass runtime.engine.Engine (it gives max_context, last_stats, "
            "default_temperature and cancel defaults) and implement generate()."
        )
    return engine


def _close_runner(runner: asyncio.Runner) -> None:
    """Close the event loop of an agent that was never closed (at exit, or when collected)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: a full close (tasks, async generators, threads)
        runner.close()
        return
    # Collected while another loop runs in this thread: that loop must be left alone.
    with contextlib.suppress(RuntimeError):
        runner.get_loop().close()


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
