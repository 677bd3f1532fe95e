"""/v1/responses through the official client, with a scripted model and real tools."""

from __future__ import annotations

import json
import os

import openai
import pytest
from scripted_engine import ScriptedEngine, analysis, call, final, raw, sampled
from server_helpers import serving

from agent.harmony import Message, Role
from agent.server import ResponseStore, create_app
from tools.browser import BrowserTool, LocalIndex

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def index(tmp_path):
    pages = [{"url": "https://alpha.example/", "title": "Alpha page", "text": "alpha facts here"}]
    path = tmp_path / "pages.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in pages))
    return LocalIndex.build(path)


@pytest.fixture
def scripted(index):
    """(engine, client): a server over a scripted engine, with a browser on a local index."""
    engine = ScriptedEngine([])
    app = create_app(
        engine,
        model_name="scripted",
        tool_factory=lambda names: [BrowserTool(index, web=False) for n in names if n == "browser"],
        builtin_tools=["browser"],
    )
    with serving(app) as url:
        yield engine, openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def browser_call(function: str, args: dict) -> Message:
    return (
        Message.from_role_and_content(Role.ASSISTANT, json.dumps(args))
        .with_channel("analysis")
        .with_recipient(f"browser.{function}")
        .with_content_type("<|constrain|>json")
    )


def test_text_input_gives_reasoning_and_message_items_with_usage(scripted):
    engine, client = scripted
    turn = sampled(analysis("Easy."), final("4"))
    engine.turns = [turn]
    response = client.responses.create(
        model="scripted", input="2+2?", instructions="Be brief.", reasoning={"effort": "low"}
    )
    assert response.status == "completed"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "Easy."
    assert response.output_text == "4"
    assert response.usage.input_tokens == len(engine.prompts[0])
    assert response.usage.output_tokens == len(turn)
    assert 0 < response.usage.output_tokens_details.reasoning_tokens < len(turn)
    assert "Reasoning: low" in engine.prompt_text(0) and "Be brief." in engine.prompt_text(0)
    assert client.responses.retrieve(response.id).output_text == "4"


def test_stream_carries_the_complete_event_sequence(scripted):
    engine, client = scripted
    engine.turns = [sampled(analysis("Easy."), final("It is 4."))]
    events = list(client.responses.create(model="scripted", input="2+2?", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    for kind in ("reasoning_text", "output_text"):
        begin = types.index("response.output_item.added", types.index("response.in_progress"))
        assert f"response.{kind}.delta" in types and f"response.{kind}.done" in types
        assert begin < types.index(f"response.{kind}.delta")
    assert (
        types.count("response.output_item.added") == types.count("response.output_item.done") == 2
    )
    assert (
        types.count("response.content_part.added") == types.count("response.content_part.done") == 2
    )
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "It is 4." == events[-1].response.output_text
    assert events[-1].response.usage.output_tokens_details.reasoning_tokens > 0


def test_function_call_then_its_output_continues_the_stored_conversation(scripted):
    engine, client = scripted
    engine.turns = [
        sampled(analysis("Need weather."), call("functions.get_weather", '{"city":"Oslo"}'))
    ]
    first = client.responses.create(model="scripted", input="Weather in Oslo?", tools=[WEATHER])
    (fc,) = [item for item in first.output if item.type == "function_call"]
    assert fc.name == "get_weather" and json.loads(fc.arguments) == {"city": "Oslo"}

    engine.turns = [sampled(final("Rainy."))]
    second = client.responses.create(
        model="scripted",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "rain, 8 C"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Rainy."
    prompt = engine.prompt_text(1)
    assert "Weather in Oslo?" in prompt and "Need weather." in prompt
    assert "functions.get_weather to=assistant<|channel|>commentary<|message|>rain, 8 C" in prompt


def test_unknown_previous_response_id_is_a_404(scripted):
    _, client = scripted
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="scripted", input="hi", previous_response_id="resp_nope")
    assert caught.value.body["code"] == "response_not_found"


def test_browser_runs_on_the_server_and_citations_become_url_annotations(scripted):
    engine, client = scripted
    engine.turns = [
        sampled(browser_call("open", {"id": "https://alpha.example/"})),
        sampled(final("Alpha has facts 【0†L0-L0】.")),
    ]
    response = client.responses.create(
        model="scripted", input="What about alpha?", tools=[{"type": "web_search"}]
    )
    search, message = response.output
    assert search.type == "web_search_call" and search.status == "completed"
    assert search.action.type == "open_page" and search.action.url == "https://alpha.example/"
    assert "alpha facts here" in engine.prompt_text(1)
    (annotation,) = message.content[0].annotations
    assert annotation.type == "url_citation" and annotation.url == "https://alpha.example/"
    text = message.content[0].text
    assert text[annotation.start_index : annotation.end_index].startswith("[1](https://alpha")


def test_a_builtin_tool_the_server_does_not_run_is_refused(scripted):
    _, client = scripted
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="scripted", input="x", tools=[{"type": "code_interpreter"}])
    assert "--tools" in caught.value.message


def test_malformed_output_and_calls_to_tools_not_offered_never_fail_the_request(scripted):
    engine, client = scripted
    engine.turns = [
        sampled(call("functions.rm_rf", "{}")),
        raw("<|channel|>analysis<|message|>hmm<|end|>Hello<|return|>"),
    ]
    response = client.responses.create(model="scripted", input="Hi", tools=[WEATHER])
    assert response.status == "completed"
    assert "Error: there is no tool 'functions.rm_rf'" in engine.prompt_text(1)
    assert response.model_extra["parser_recoveries"]
    assert response.output_text == "Hello"


def test_max_output_tokens_makes_an_incomplete_response(scripted):
    engine, client = scripted
    engine.turns = [sampled(analysis("a long thought " * 20), final("4"))]
    response = client.responses.create(model="scripted", input="2+2?", max_output_tokens=5)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 5


def test_responses_kept_on_disk_survive_a_restart_and_the_store_is_bounded(tmp_path):
    engine = ScriptedEngine([sampled(final("one")), sampled(final("two"))])
    with serving(create_app(engine, store=ResponseStore(1, tmp_path))) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        first = client.responses.create(input="first")
        second = client.responses.create(input="second")
    assert len(list(tmp_path.glob("*.json"))) == 1
    engine.turns = [sampled(final("three"))]
    with serving(create_app(engine, store=ResponseStore(1, tmp_path))) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        third = client.responses.create(input="third", previous_response_id=second.id)
        assert third.output_text == "three" and "second" in engine.prompt_text(2)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(input="x", previous_response_id=first.id)


@pytest.mark.docker
def test_python_runs_in_the_sandbox_as_a_code_interpreter_item_then_is_removed(
    docker_client, sandbox_image
):
    from tools.python import PythonTool
    from tools.python.docker_backend import owned_filters

    engine = ScriptedEngine(
        [
            sampled(
                Message.from_role_and_content(Role.ASSISTANT, "print(6 * 7)")
                .with_channel("analysis")
                .with_recipient("python")
                .with_content_type("code")
            ),
            sampled(final("It is 42.")),
        ]
    )
    app = create_app(
        engine,
        tool_factory=lambda names: [PythonTool() for n in names if n == "python"],
        builtin_tools=["python"],
    )
    with serving(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        response = client.responses.create(input="6*7?", tools=[{"type": "code_interpreter"}])
    interpreter, message = response.output
    assert interpreter.type == "code_interpreter_call" and interpreter.status == "completed"
    assert interpreter.code == "print(6 * 7)"
    assert interpreter.outputs[0].logs.strip() == "42"
    assert message.content[0].text == "It is 42."
    assert not docker_client.containers.list(all=True, filters=owned_filters(os.getpid()))


def test_the_clients_stream_helper_accumulates_the_events_into_the_response(scripted):
    engine, client = scripted
    engine.turns = [sampled(analysis("Hm."), call("functions.get_weather", '{"city":"Rome"}'))]
    with client.responses.stream(model="scripted", input="Rome?", tools=[WEATHER]) as stream:
        final_response = stream.get_final_response()
    (fc,) = [item for item in final_response.output if item.type == "function_call"]
    assert json.loads(fc.arguments) == {"city": "Rome"}
    assert final_response.status == "completed"
