"""/v1/chat/completions through the official client, with a scripted model."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest
from scripted_engine import ScriptedEngine, analysis, call, final, raw, sampled
from server_helpers import serving, uvicorn_server

from agent.server import create_app

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def scripted():
    """(engine, client) for a server over a scripted engine whose turns the test sets."""
    engine = ScriptedEngine([])
    with serving(create_app(engine, model_name="scripted")) as url:
        yield engine, openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def test_reasoning_comes_apart_from_the_answer_with_real_usage(scripted):
    engine, client = scripted
    engine.turns = [sampled(analysis("Two and two make four."), final("4"))]
    reply = client.chat.completions.create(
        model="scripted",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
        reasoning_effort="high",
    )
    message = reply.choices[0].message
    assert message.content == "4"
    assert message.model_extra["reasoning_content"] == "Two and two make four."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.prompt_tokens == len(engine.prompts[0])
    assert reply.usage.completion_tokens == len(
        sampled(analysis("Two and two make four."), final("4"))
    )
    assert reply.usage.completion_tokens_details.reasoning_tokens > 0
    prompt = engine.prompt_text(0)
    assert "Reasoning: high" in prompt and "Be brief." in prompt and "2+2?" in prompt


def test_streamed_chunks_add_up_to_the_whole_answer(scripted):
    engine, client = scripted
    engine.turns = [sampled(analysis("Think."), final("The answer is 4."))]
    chunks = list(
        client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "2+2?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == "The answer is 4."
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in deltas) == "Think."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens > 0


def test_function_call_goes_to_the_client_and_its_result_back_to_the_model(scripted):
    engine, client = scripted
    engine.turns = [
        sampled(analysis("Need the weather."), call("functions.get_weather", '{"city":"Paris"}'))
    ]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    reply = client.chat.completions.create(model="scripted", messages=messages, tools=[WEATHER])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "Paris"}
    assert "type get_weather = (_: {" in engine.prompt_text(0)

    engine.turns = [sampled(final("It is sunny."))]
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21 C"},
    ]
    reply = client.chat.completions.create(model="scripted", messages=messages, tools=[WEATHER])
    assert reply.choices[0].message.content == "It is sunny."
    prompt = engine.prompt_text(1)
    assert (
        "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny, 21 C"
        in prompt
    )


def test_streamed_function_call_arrives_as_tool_call_deltas(scripted):
    engine, client = scripted
    engine.turns = [sampled(call("functions.get_weather", '{"city":"Oslo"}'))]
    chunks = list(
        client.chat.completions.create(
            model="scripted",
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
            tools=[WEATHER],
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].function.name == "get_weather" and calls[0].id
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_call_to_a_tool_not_offered_goes_back_to_the_model_as_an_error(scripted):
    engine, client = scripted
    engine.turns = [
        sampled(call("functions.delete_everything", "{}")),
        sampled(final("Sorry, I cannot do that.")),
    ]
    reply = client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "Clean up."}], tools=[WEATHER]
    )
    assert reply.choices[0].message.content == "Sorry, I cannot do that."
    assert reply.choices[0].message.tool_calls is None
    assert "Error: there is no tool 'functions.delete_everything'" in engine.prompt_text(1)


def test_malformed_model_output_is_recovered_and_reported_not_a_500(scripted):
    engine, client = scripted
    engine.turns = [raw("<|channel|><|message|>Hello there<|return|>")]  # an empty channel
    reply = client.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "Hi"}]
    )
    assert reply.choices[0].message.content == "Hello there"
    assert reply.model_extra["parser_recoveries"]


def test_shutdown_lets_the_request_in_flight_finish_then_closes_the_engine():
    engine = ScriptedEngine([sampled(analysis("thinking " * 20), final("finished"))], delay=0.02)
    closed = threading.Event()
    engine.close = closed.set  # the server closes its engine once requests are done
    replies = []
    with uvicorn_server(create_app(engine, model_name="scripted")) as (url, server):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        ask = threading.Thread(
            target=lambda: replies.append(
                client.chat.completions.create(
                    model="scripted", messages=[{"role": "user", "content": "hi"}]
                )
            )
        )
        ask.start()
        while not engine.prompts:
            time.sleep(0.01)
        server.should_exit = True
        ask.join(timeout=30)
    assert replies[0].choices[0].message.content == "finished"
    assert closed.is_set()
