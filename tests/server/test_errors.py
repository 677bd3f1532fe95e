"""Requests the server refuses: the OpenAI error shape with the right status, no traces."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest
from scripted_engine import ScriptedEngine, analysis, final, sampled
from server_helpers import serving
from typer.testing import CliRunner

from agent.cli import app as cli
from agent.server import Limits, create_app

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def error_of(reply: httpx.Response, status: int) -> dict:
    assert reply.status_code == status, reply.text
    assert "Traceback" not in reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.fixture
def server():
    engine = ScriptedEngine([], delay=0.05)
    app = create_app(engine, model_name="scripted", limits=Limits(max_body_bytes=2000))
    with serving(app) as url:
        yield engine, url


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/completions"])
def test_a_body_that_is_not_json_is_a_400(server, path):
    _, url = server
    reply = httpx.post(
        url + path, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert error_of(reply, 400)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": "hi"}, "messages"),
        ("/v1/chat/completions", {**CHAT, "temperature": 9}, "temperature"),
        ("/v1/responses", {"input": "hi", "max_output_tokens": "many"}, "max_output_tokens"),
        ("/v1/completions", {"prompt": [1, 2], "max_tokens": 0}, "max_tokens"),
        ("/v1/completions", {}, "prompt"),
    ],
)
def test_fields_that_do_not_fit_the_schema_are_a_422_naming_the_field(server, path, body, param):
    _, url = server
    error = error_of(httpx.post(url + path, json=body), 422)
    assert error["param"].startswith(param)


def test_semantic_problems_are_a_400(server):
    _, url = server
    reply = httpx.post(url + "/v1/completions", json={"prompt": [5, 999_999]})
    assert "outside the vocabulary" in error_of(reply, 400)["message"]
    body = {"messages": [{"role": "tool", "tool_call_id": "call_x", "content": "42"}]}
    reply = httpx.post(url + "/v1/chat/completions", json=body)
    assert error_of(reply, 400)["param"] == "messages.0.tool_call_id"


def test_an_oversized_body_is_a_413(server):
    _, url = server
    body = {"messages": [{"role": "user", "content": "x" * 5000}]}
    assert error_of(httpx.post(url + "/v1/chat/completions", json=body), 413)


def test_unknown_model_and_route_are_404s(server):
    _, url = server
    reply = httpx.post(url + "/v1/chat/completions", json={**CHAT, "model": "gpt-5"})
    assert error_of(reply, 404)["code"] == "model_not_found"
    assert error_of(httpx.get(url + "/v1/nothing"), 404)


def test_a_failing_engine_is_a_500_that_names_no_internals(server):
    engine, url = server
    engine.turns = []  # the scripted engine raises when asked for a turn it does not have
    reply = httpx.post(url + "/v1/chat/completions", json=CHAT)
    assert error_of(reply, 500)["type"] == "server_error"


def test_requests_beyond_the_in_flight_limit_get_a_429():
    engine = ScriptedEngine([sampled(analysis("slow " * 30), final("done"))], delay=0.05)
    app = create_app(engine, model_name="scripted", limits=Limits(max_in_flight=1))
    with serving(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        started = threading.Event()

        def first() -> None:
            with httpx.stream(
                "POST", url + "/v1/chat/completions", json={**CHAT, "stream": True}
            ) as r:
                for _ in r.iter_lines():
                    started.set()

        thread = threading.Thread(target=first)
        thread.start()
        assert started.wait(10)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="scripted", messages=CHAT["messages"])
        assert caught.value.response.headers["retry-after"] == "1"
        thread.join()
        engine.turns = [sampled(final("now there is room"))]
        reply = client.chat.completions.create(model="scripted", messages=CHAT["messages"])
        assert reply.choices[0].message.content == "now there is room"


def test_an_api_key_is_required_on_every_route_but_health():
    engine = ScriptedEngine([sampled(final("hello"))])
    with serving(create_app(engine, model_name="scripted", api_key="s3cret")) as url:
        assert httpx.get(url + "/health").status_code == 200
        assert error_of(httpx.get(url + "/v1/models"), 401)["code"] == "invalid_api_key"
        wrong = {"Authorization": "Bearer nope"}
        assert error_of(httpx.post(url + "/v1/chat/completions", json=CHAT, headers=wrong), 401)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="nope").models.list()
        client = openai.OpenAI(base_url=url + "/v1", api_key="s3cret")
        assert [m.id for m in client.models.list()] == ["scripted"]
        reply = client.chat.completions.create(model="scripted", messages=CHAT["messages"])
        assert reply.choices[0].message.content == "hello"


def test_serve_refuses_to_listen_beyond_loopback_without_a_key(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--model", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "without an API key" in result.output
