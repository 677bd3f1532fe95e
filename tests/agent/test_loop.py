"""The agent loop driven through every path by a scripted model and real function tools."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import warnings

import pytest
from model_servers import KINDS
from scripted_engine import ENC, ScriptedEngine, analysis, call, final, raw, sampled

from agent import Agent
from agent.events import (
    AnswerDelta,
    CommentaryDelta,
    Done,
    Error,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallFinished,
    ToolCallStarted,
    ToolCallTruncated,
    ToolResult,
    TurnEnd,
)
from agent.harmony import Message, Role, ToolNamespaceConfig
from runtime.engine import Engine, GenerationStats
from tools.base import Tool, tool_message
from tools.functions import function_tool


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@function_tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


@function_tool(timeout=0.05)
async def slow(seconds: float) -> str:
    """Sleeps."""
    await asyncio.sleep(seconds)
    return "woke up"


class EchoTool(Tool):
    """A builtin-style tool (system message) that records whether it was closed."""

    name = "echo"

    def __init__(self) -> None:
        self.closed = 0

    def namespace(self) -> ToolNamespaceConfig:
        return ToolNamespaceConfig(name="echo", description="Echoes its input.", tools=[])

    async def call(self, message: Message) -> list[Message]:
        return [tool_message(message, message.text.upper())]

    async def aclose(self) -> None:
        self.closed += 1


def test_plain_answer_with_usage_and_request_options() -> None:
    turn = sampled(analysis("User greets. Reply."), final("Hello!"))
    engine = ScriptedEngine([turn])
    agent = Agent(engine, reasoning_effort="low", max_tokens_per_turn=500, seed=7)
    result = agent.run("hi")

    assert result.final_output == "Hello!"
    assert result.stop_reason == "final"
    assert [m.channel for m in result.conversation.messages[1:]] == [None, "analysis", "final"]
    assert "Reasoning: low" in engine.prompt_text(0)
    assert engine.prompt_text(0).endswith("<|start|>user<|message|>hi<|end|><|start|>assistant")
    assert engine.options[0] == {
        "max_tokens": 500,
        "temperature": 1.0,
        "top_p": 1.0,
        "seed": 7,
        "stop_tokens": [200002, 200012],
    }
    usage = result.usage
    assert usage.prompt_tokens == len(engine.prompts[0])
    assert usage.completion_tokens == len(turn)
    assert usage.reasoning_tokens == len(ENC.encode("User greets. Reply."))
    assert usage.prefilled_tokens is None  # the scripted engine reports no cache stats
    assert result.turns[0].first_token_seconds is not None


def test_function_call_result_then_answer() -> None:
    engine = ScriptedEngine(
        [
            sampled(analysis("Use add."), call("functions.add", '{"a": 2, "b": "3"}')),
            sampled(final("2 + 3 = 5")),
        ]
    )
    result = Agent(engine, tools=[add]).run("what is 2+3?")

    assert result.final_output == "2 + 3 = 5"
    [record] = result.tool_calls
    assert (record.recipient, record.output, record.is_error) == ("functions.add", "5", False)
    second = engine.prompt_text(1)
    assert "type add = (_: {\na: number,\nb: number,\n}) => any;" in engine.prompt_text(0)
    expected = "<|start|>functions.add to=assistant<|channel|>commentary<|message|>5<|end|>"
    assert expected in second
    # Chain of thought stays while the model is still working towards an answer.
    assert "Use add." in second


def test_analysis_dropped_after_final_answer_in_follow_up() -> None:
    engine = ScriptedEngine(
        [
            sampled(analysis("First thought."), call("functions.add", '{"a": 1, "b": 1}')),
            sampled(analysis("Tool said 2."), final("2")),
            sampled(analysis("Second question."), call("functions.add", '{"a": 2, "b": 2}')),
            sampled(final("4")),
        ]
    )
    agent = Agent(engine, tools=[add])
    assert agent.run("1+1?").final_output == "2"
    follow_up = agent.run("and 2+2?")

    assert follow_up.final_output == "4"
    third, fourth = engine.prompt_text(2), engine.prompt_text(3)
    for prompt in (third, fourth):
        assert "First thought." not in prompt and "Tool said 2." not in prompt
        assert "<|channel|>final<|message|>2<|end|><|start|>user<|message|>and 2+2?" in prompt
    assert "Second question." in fourth
    # The session keeps everything, reasoning included.
    texts = [m.text for m in agent.conversation.messages]
    assert "First thought." in texts and "Second question." in texts
    assert [r.final_output for r in agent.results] == ["2", "4"]
    assert follow_up.conversation == agent.conversation  # the whole session


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (call("functions.nope", "{}"), "there is no tool 'functions.nope'. Available: "),
        (call("functions.add", '{"a": 1,'), "not valid JSON"),
        (call("functions.add", '{"a": "x", "b": 1}'), "a: Input should be a valid integer"),
        (call("functions.add", '{"a": 1, "b": 2, "c": 3}'), "c: Extra inputs are not permitted"),
        (call("functions.explode", '{"reason": "x"}'), "ValueError: boom: x"),
        (call("functions.slow", '{"seconds": 5}'), "timed out after 0.05 s"),
    ],
    ids=["unknown", "bad-json", "invalid", "extra", "exception", "timeout"],
)
def test_tool_failures_go_back_to_the_model(message: Message, expected: str) -> None:
    engine = ScriptedEngine([sampled(message), sampled(final("Sorry."))])
    started = time.monotonic()
    result = Agent(engine, tools=[add, explode, slow]).run("go")

    assert time.monotonic() - started < 2
    assert result.stop_reason == "final" and result.final_output == "Sorry."
    [record] = result.tool_calls
    assert record.is_error and expected in record.output
    tool_reply = result.conversation.messages[-2]
    assert tool_reply.author.role == Role.TOOL and tool_reply.author.name == message.recipient
    assert expected in engine.prompt_text(1)


def test_crashing_builtin_tool_does_not_end_the_run() -> None:
    class Broken(EchoTool):
        async def call(self, message: Message) -> list[Message]:
            raise RuntimeError("container vanished")

    engine = ScriptedEngine(
        [raw("<|channel|>commentary to=echo<|message|>hi<|call|>"), sampled(final("ok"))]
    )
    result = Agent(engine, tools=[Broken()]).run("go")
    assert result.final_output == "ok"
    assert result.tool_calls[0].output == "Error: RuntimeError: container vanished"


def test_builtin_tools_in_system_message_function_tools_in_developer() -> None:
    engine = ScriptedEngine([sampled(final("ok"))])
    Agent(engine, tools=[EchoTool(), add, explode], instructions="Be brief.").run("go")
    prompt = engine.prompt_text(0)
    system, developer = prompt.split("<|start|>developer")
    assert "## echo\n\nEchoes its input." in system
    assert "Calls to these tools must go to the commentary channel: 'functions'." in system
    assert "# Instructions\n\nBe brief." in developer
    assert developer.count("namespace functions {") == 1
    assert "type add" in developer and "type explode" in developer


def test_malformed_output_is_recovered_and_reported() -> None:
    # Channel before recipient is fine; extra words in the header are not.
    turn = raw("<|channel|>commentary to=echo code junk<|message|>hi<|call|>")
    engine = ScriptedEngine([turn, raw("<|channel|>final<|message|>HI back<|return|>")])
    result = Agent(engine, tools=[EchoTool()]).run("go")
    assert result.tool_calls[0].output == "HI"
    assert result.final_output == "HI back"
    assert any("unexpected words" in r for r in result.turns[0].recoveries)


def test_answer_without_channel_is_still_the_answer() -> None:
    engine = ScriptedEngine([raw("I can't help with that.<|return|>")])
    result = Agent(engine).run("go")
    assert result.stop_reason == "final"
    assert result.final_output == "I can't help with that."
    assert result.turns[0].recoveries


def test_max_turns() -> None:
    looping = sampled(call("functions.add", '{"a": 1, "b": 1}'))
    engine = ScriptedEngine([looping] * 3)
    result = Agent(engine, tools=[add], max_turns=2).run("go")
    assert result.stop_reason == "max_turns"
    assert len(result.tool_calls) == 2 and len(engine.prompts) == 2


def test_max_tokens_per_turn() -> None:
    engine = ScriptedEngine([sampled(analysis("word " * 100), final("late"))])
    result = Agent(engine, max_tokens_per_turn=20).run("go")
    assert result.stop_reason == "max_tokens"
    assert result.usage.completion_tokens == 20
    assert result.final_output == ""


def test_max_tokens_enforced_even_if_engine_ignores_it() -> None:
    class Greedy(ScriptedEngine):
        def generate(self, tokens, *, max_tokens, **options):
            return super().generate(tokens, max_tokens=10_000, **options)

    engine = Greedy([sampled(analysis("word " * 100), final("late"))])
    result = Agent(engine, max_tokens_per_turn=20).run("go")
    assert (result.stop_reason, result.usage.completion_tokens) == ("max_tokens", 20)


def test_engine_context_bounds_each_turn() -> None:
    class Bounded(ScriptedEngine):
        max_context = 0  # set below, once the prompt length is known

    call_turn = sampled(call("functions.add", '{"a": 1, "b": 1}'))
    engine = Bounded([call_turn, sampled(final("2"))])
    agent = Agent(engine, tools=[add], max_tokens_per_turn=1000)
    user = ENC.render(Message.from_role_and_content(Role.USER, "1+1?"))
    engine.max_context = len(agent.prompt_tokens()) + len(user) + len(call_turn) + 2
    result = agent.run("1+1?")
    assert engine.options[0]["max_tokens"] == len(call_turn) + 2
    # The tool result filled the context: the run stops instead of asking for no tokens.
    assert result.stop_reason == "context_full" and len(engine.prompts) == 1


def test_wall_time_limit_during_generation() -> None:
    engine = ScriptedEngine([sampled(analysis("word " * 200), final("late"))], delay=0.01)
    started = time.monotonic()
    result = Agent(engine, max_seconds=0.2).run("go")
    assert result.stop_reason == "timeout"
    assert time.monotonic() - started < 1.5
    assert engine.closed.wait(2), "the engine's generator was not closed"


def test_wall_time_limit_during_tool_call() -> None:
    @function_tool(timeout=None)
    async def wait(seconds: float) -> str:
        """Waits."""
        await asyncio.sleep(seconds)
        return "done"

    engine = ScriptedEngine([sampled(call("functions.wait", '{"seconds": 10}'))])
    started = time.monotonic()
    result = Agent(engine, tools=[wait], max_seconds=0.2).run("go")
    assert result.stop_reason == "timeout"
    assert time.monotonic() - started < 1.5


def test_engine_failure_ends_run_with_error() -> None:
    class Failing(Engine):
        def generate(self, tokens, **options):
            yield from raw("<|channel|>final<|message|>par")
            raise ConnectionError("server went away")

    async def collect():
        return [e async for e in Agent(Failing()).stream("go")]

    events = asyncio.run(collect())
    assert isinstance(events[-2], Error) and "server went away" in events[-2].message
    result = events[-1].result
    assert (result.stop_reason, result.error) == ("error", "ConnectionError: server went away")


def test_stream_event_order() -> None:
    engine = ScriptedEngine(
        [
            sampled(
                analysis("Think."),
                Message.from_role_and_content(Role.ASSISTANT, "Adding.").with_channel("commentary"),
                call("functions.add", '{"a": 1, "b": 2}'),
            ),
            sampled(final("3")),
        ]
    )

    async def collect():
        return [e async for e in Agent(engine, tools=[add]).stream("go")]

    events = asyncio.run(collect())
    kinds = []
    for e in events:  # collapse runs of deltas
        if not kinds or kinds[-1] is not type(e):
            kinds.append(type(e))
    assert kinds == [
        ReasoningDelta,
        CommentaryDelta,
        ToolCallStarted,
        ToolCallArgumentsDelta,
        ToolCallFinished,
        ToolResult,
        TurnEnd,
        AnswerDelta,
        TurnEnd,
        Done,
    ]
    text = lambda kind: "".join(e.text for e in events if isinstance(e, kind))  # noqa: E731
    assert text(ReasoningDelta) == "Think."
    assert text(ToolCallArgumentsDelta) == '{"a": 1, "b": 2}'
    assert text(AnswerDelta) == "3"
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    finished = next(e for e in events if isinstance(e, ToolCallFinished))
    result_event = next(e for e in events if isinstance(e, ToolResult))
    assert started.call_id == finished.call_id == result_event.call.call_id
    assert (finished.recipient, result_event.call.output) == ("functions.add", "3")


def test_cancellation_stops_the_engine_and_keeps_the_session_as_it_was() -> None:
    echo = EchoTool()
    engine = ScriptedEngine(
        [sampled(final("first")), sampled(analysis("word " * 500), final("never"))], delay=0.01
    )

    async def main():
        agent = Agent(engine, tools=[echo])
        assert (await agent.arun("one")).final_output == "first"
        kept = list(agent.messages)
        task = asyncio.create_task(agent.arun("two"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return agent, kept

    agent, kept = asyncio.run(main())
    assert engine.closed.wait(2)
    assert agent.messages == kept  # no dangling question, no half-written turn
    assert echo.closed == 0  # tools live on with the agent (chat goes on after a cancel)


def test_breaking_out_of_stream_early_leaves_no_dangling_user_message() -> None:
    engine = ScriptedEngine([sampled(analysis("word " * 50), final("x")), sampled(final("y"))])
    agent = Agent(engine)

    async def first_delta():
        async with contextlib.aclosing(agent.stream("abandoned")) as events:
            async for event in events:
                return event

    assert isinstance(asyncio.run(first_delta()), ReasoningDelta)
    assert agent.messages == []
    assert agent.run("next").final_output == "y"
    assert "abandoned" not in engine.prompt_text(1)


def test_context_managers_close_tools() -> None:
    echo = EchoTool()
    with Agent(ScriptedEngine([sampled(final("a"))]), tools=[echo]) as agent:
        assert agent.run("go").final_output == "a"
    assert echo.closed == 1

    async def main():
        async with Agent(ScriptedEngine([]), tools=[echo]):
            pass

    asyncio.run(main())
    assert echo.closed == 2


def test_engine_stats_reported_as_prefilled_and_reused() -> None:
    class Caching(ScriptedEngine):
        def generate(self, tokens, **options):
            self.last_stats = GenerationStats(prefilled=4, reused=len(tokens) - 4)
            return super().generate(tokens, **options)

    engine = Caching([sampled(final("a"))])
    usage = Agent(engine).run("go").usage
    assert (usage.prefilled_tokens, usage.reused_tokens) == (4, usage.prompt_tokens - 4)


def test_unknown_effort_says_what_is_valid() -> None:
    with pytest.raises(ValueError, match="use low, medium or high"):
        Agent(ScriptedEngine([]), reasoning_effort="max")


def test_engine_without_the_protocol_attributes_is_refused_clearly() -> None:
    class Bare:
        def generate(self, tokens, **options):
            yield from ()

    lacks = r"lacks max_context, last_stats, default_temperature, cancel.*Subclass"
    with pytest.raises(TypeError, match=lacks):
        Agent(Bare())


# -- calls as real models write them, through real servers ---------------------------------

WEATHER_CALL = '<|channel|>commentary to=functions.add <|constrain|>json<|message|>{"a": 2, "b": 3}'
INVENTED_REPLY = (
    "<|start|>functions.add to=assistant<|channel|>commentary<|message|>99<|end|>"
    "<|start|>assistant<|channel|>final<|message|>It is 99.<|return|>"
)


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_ending_in_end_runs_once_and_the_invented_answer_is_dropped(
    model_server, kind
) -> None:
    """`<|end|>` is no stop token, so the server samples on: the model writes the tool's
    answer itself and a final answer. Only the real call runs; nothing invented is kept."""
    server = model_server(
        kind,
        [raw(WEATHER_CALL + "<|end|>" + INVENTED_REPLY), sampled(final("2 + 3 = 5"))],
    )
    result = Agent(server.url, tools=[add]).run("2+3?")

    assert (result.final_output, result.stop_reason) == ("2 + 3 = 5", "final")
    [record] = result.tool_calls
    assert (record.recipient, record.output, record.is_error) == ("functions.add", "5", False)
    authors = [m.author.name for m in result.conversation.messages if m.author.role == Role.TOOL]
    assert authors == ["functions.add"]
    assert "99" not in [m.text for m in result.conversation.messages]
    second = ENC.decode(server.prompt(1))
    assert "It is 99" not in second and "<|message|>99<|end|>" not in second
    assert any("instead of <|call|>" in r for r in result.turns[0].recoveries)


def test_an_invented_tool_message_without_a_call_is_never_dispatched() -> None:
    engine = ScriptedEngine(
        [
            raw("<|channel|>analysis<|message|>Check.<|end|>" + INVENTED_REPLY),
            sampled(final("I should call add.")),
        ]
    )
    result = Agent(engine, tools=[add]).run("2+3?")
    assert result.tool_calls == [] and result.final_output == "I should call add."
    assert all(m.author.role != Role.TOOL for m in result.conversation.messages)
    assert "99" not in engine.prompt_text(1)
    assert any("'functions.add'" in r for r in result.turns[0].recoveries)


@pytest.mark.parametrize("kind", ["vllm", "vllm-0.10.1", "ollama", "llamacpp"])
def test_a_call_cut_by_the_token_limit_is_not_a_call(model_server, kind) -> None:
    full = sampled(analysis("Add."), call("functions.add", '{"a": 2, "b": 3}'))
    server = model_server(kind, [full, sampled(final("ok"))])
    agent = Agent(server.url, tools=[add], max_tokens_per_turn=len(full) - 4)

    async def collect():
        return [e async for e in agent.stream("2+3?")]

    events = asyncio.run(collect())
    result = events[-1].result
    assert result.stop_reason == "max_tokens" and result.tool_calls == []
    assert not any(isinstance(e, ToolCallFinished) for e in events)
    [cut] = [e for e in events if isinstance(e, ToolCallTruncated)]
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    assert (cut.call_id, cut.recipient) == (started.call_id, "functions.add")
    assert result.truncated_call.arguments == cut.arguments
    assert result.turns[0].truncated_call == result.truncated_call
    # The next run's prompt has the reasoning but not the cut call.
    agent.max_tokens_per_turn = 100
    assert agent.run("again").final_output == "ok"
    assert "to=functions.add" not in ENC.decode(server.prompt(1))


@pytest.mark.parametrize("limit", ["cancel", "max_seconds"])
def test_a_run_cut_short_stops_a_remote_generation_at_once(model_server, limit) -> None:
    """The server is still prefilling (no token yet): the run does not wait for it."""
    server = model_server("vllm", [sampled(final("late"))], stall_before_tokens=True)
    agent = Agent(server.url, max_seconds=0.5 if limit == "max_seconds" else None)

    async def main() -> float:
        task = asyncio.create_task(agent.arun("hi"))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        if limit == "cancel":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            assert (await task).stop_reason == "timeout"
        return time.monotonic() - started

    assert asyncio.run(main()) < 3


# -- the blocking API ------------------------------------------------------------------------


def test_run_inside_a_running_event_loop_says_to_use_arun() -> None:
    agent = Agent(ScriptedEngine([sampled(final("a"))]))

    async def in_jupyter():
        with pytest.raises(RuntimeError, match=r"use `await agent\.arun\(\.\.\.\)`"):
            agent.run("hi")
        return await agent.arun("hi")

    assert asyncio.run(in_jupyter()).final_output == "a"


def test_agents_never_closed_do_not_leak_their_event_loops() -> None:
    """Each `run` loop becomes the thread's current loop; the next agent's replaces it, and
    an unclosed one is then collected with a ResourceWarning (its sockets still open)."""

    def session() -> None:
        agent = Agent(ScriptedEngine([sampled(final("a"))]))
        assert agent.run("hi").final_output == "a"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(3):
            session()
            gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def test_the_agent_samples_at_the_engines_default_temperature_unless_told() -> None:
    greedy = ScriptedEngine([sampled(final("a")), sampled(final("b"))])
    greedy.default_temperature = 0.0  # as the nano demo model
    Agent(greedy).run("go")
    Agent(greedy, temperature=0.7).run("go")
    assert [o["temperature"] for o in greedy.options] == [0.0, 0.7]
    plain = ScriptedEngine([sampled(final("c"))])
    Agent(plain).run("go")
    assert plain.options[0]["temperature"] == 1.0  # gpt-oss's recommended sampling
