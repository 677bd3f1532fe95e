"""/v1/completions with token ids: the official client, `runtime.remote`, and batching."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from server_helpers import serving

from agent import Agent
from agent.server import create_app
from runtime.batch import BatchedEngine
from runtime.remote import connect

STOPS = [200002, 200012]


@pytest.fixture
def server(mini_model):
    engine = BatchedEngine(mini_model, max_batch=4)
    with serving(create_app(engine, model_name="mini")) as url:
        yield url, engine


def prompts(n: int) -> list[list[int]]:
    return [[200006, 1428, 200008, 17 + i, 3000 + 97 * i, 200007, 200006] for i in range(n)]


def test_completion_returns_the_token_ids_the_model_samples(server, mini_model):
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    prompt = prompts(1)[0]
    expected = list(mini_model.generate(prompt, max_tokens=12, temperature=0))
    whole = client.completions.create(model="mini", prompt=prompt, max_tokens=12, temperature=0)
    choice = whole.choices[0]
    assert choice.model_extra["token_ids"] == expected
    assert choice.finish_reason == "length"
    assert whole.usage.prompt_tokens == len(prompt) and whole.usage.completion_tokens == 12
    chunks = list(
        client.completions.create(
            model="mini",
            prompt=prompt,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = [t for c in chunks for ch in c.choices for t in ch.model_extra["token_ids"]]
    assert streamed == expected
    assert chunks[-1].usage.completion_tokens == 12
    assert "".join(ch.text for c in chunks for ch in c.choices) == choice.text


def test_concurrent_greedy_requests_give_the_tokens_of_sequential_ones(server, mini_model):
    url, engine = server
    batch = prompts(5)
    sequential = [list(mini_model.generate(p, max_tokens=16, temperature=0)) for p in batch]
    results: list[list[int] | None] = [None] * len(batch)
    peak = 0

    def ask(i: int) -> None:
        body = {"prompt": batch[i], "max_tokens": 16, "temperature": 0}
        reply = httpx.post(url + "/v1/completions", json=body, timeout=120)
        results[i] = reply.json()["choices"][0]["token_ids"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(batch))]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, engine.running)
        time.sleep(0.005)
    for t in threads:
        t.join()
    assert results == sequential
    assert peak > 1  # they really were decoded together


def test_agent_runs_a_task_through_the_server_as_it_does_locally(server, mini_model):
    url, _ = server
    options = dict(
        max_turns=1,
        max_tokens_per_turn=16,
        temperature=0.0,
        seed=0,
        conversation_start_date="2026-01-01",
    )
    local = Agent(mini_model, **options).run("What is 2 + 2?")
    with connect(url) as remote_engine:
        remote = Agent(remote_engine, **options).run("What is 2 + 2?")
    assert remote.conversation.to_dict() == local.conversation.to_dict()
    assert remote.usage.completion_tokens == local.usage.completion_tokens > 0


def test_stop_token_ends_the_completion_and_is_returned(server, mini_model):
    url, _ = server
    prompt = prompts(1)[0]
    expected = list(mini_model.generate(prompt, max_tokens=12, temperature=0))
    stop = expected[3]
    body = {"prompt": prompt, "max_tokens": 12, "temperature": 0, "stop_token_ids": [stop]}
    choice = httpx.post(url + "/v1/completions", json=body, timeout=60).json()["choices"][0]
    assert choice["token_ids"] == expected[: expected.index(stop) + 1]
    assert choice["finish_reason"] == "stop" and choice["stop_reason"] == stop


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


# Greedy: the random model's run is the same every time (no stop token early).
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"prompt": prompts(1)[0], "max_tokens": 20000}),
        ("/v1/responses", {"input": "Tell me a long story.", "max_output_tokens": 20000}),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "A long story."}], "max_tokens": 20000},
        ),
    ],
)
def test_a_client_leaving_mid_stream_frees_its_slot_at_once(server, path, body):
    url, engine = server
    body = {**body, "stream": True, "temperature": 0}
    with httpx.stream("POST", url + path, json=body, timeout=60) as reply:
        lines = reply.iter_lines()  # kept: dropping the iterator would close the connection
        next(lines)
        # A random model may sample for long without a text event: watch the engine.
        assert wait_until(lambda: engine.running == 1, 10.0)
    assert wait_until(lambda: engine.running == 0, 2.0)
    assert httpx.get(url + "/health").json()["in_flight"] == 0


def test_a_client_timing_out_on_a_whole_response_frees_its_slot(server):
    url, engine = server
    body = {"prompt": prompts(1)[0], "max_tokens": 20000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/completions", json=body, timeout=0.5)
    assert wait_until(lambda: engine.running == 0, 2.0)


def test_a_prompt_that_extends_an_earlier_one_reports_its_cached_tokens(server):
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    prompt = prompts(3)[2]
    first = client.completions.create(model="mini", prompt=prompt, max_tokens=4, temperature=0)
    follow_up = prompt + first.choices[0].model_extra["token_ids"] + [200007]
    second = client.completions.create(model="mini", prompt=follow_up, max_tokens=4, temperature=0)
    # All but the last sampled token (never run through the model) came from the cache.
    assert second.usage.prompt_tokens_details.cached_tokens == len(prompt) + 3
