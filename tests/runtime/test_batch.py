"""The batched engine: many sequences per decode step, the same tokens as one at a time."""

from __future__ import annotations

import threading

import pytest
import torch
from runtime_helpers import prompt

from runtime import load_model
from runtime.batch import BatchedEngine, EngineClosed


@pytest.fixture(scope="module")
def model(tiny_original):
    return load_model(tiny_original, dtype=torch.float32, compile=False)


@pytest.fixture
def engine(model):
    engine = BatchedEngine(model, max_batch=3, max_slots=4)
    yield engine
    engine.close()


def run_together(engine, requests):
    """Each (prompt, options) read by its own thread at once; the tokens in order."""
    results = [None] * len(requests)

    def read(i):
        tokens, options = requests[i]
        results[i] = list(engine.generate(tokens, **options))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_get_the_tokens_of_one_at_a_time_generation(engine, model):
    # Five requests over three batch places: two join as others leave. Greedy and seeded
    # sampling both give exactly what the single-sequence engine gives.
    requests = [
        (prompt(5 + 3 * i, seed=i), {"max_tokens": 10 + 4 * i, "temperature": 0}) for i in range(3)
    ] + [
        (prompt(9, seed=10 + i), {"max_tokens": 12, "temperature": 0.8, "seed": i})
        for i in range(2)
    ]
    expected = [list(model.generate(p, **o)) for p, o in requests]
    assert run_together(engine, requests) == expected


def test_a_stop_token_ends_a_sequence_and_is_yielded(engine, model):
    tokens = prompt(6, seed=3)
    full = list(model.generate(tokens, max_tokens=12, temperature=0))
    out = list(engine.generate(tokens, max_tokens=12, temperature=0, stop_tokens=[full[4]]))
    assert out == full[: full.index(full[4]) + 1]


def test_a_conversation_finds_its_own_cache_on_its_next_turn(engine):
    first = prompt(20, seed=1)
    other = prompt(20, seed=2)
    stream = engine.generate(first, max_tokens=5, temperature=0)
    reply = list(stream)
    list(engine.generate(other, max_tokens=5, temperature=0))  # another conversation between
    follow_up = first + reply + prompt(4, seed=5)
    stream = engine.generate(follow_up, max_tokens=3, temperature=0)
    list(stream)
    # Everything but the last sampled token (never run through the model) came from the cache.
    assert stream.stats.reused == len(first) + len(reply) - 1
    assert stream.stats.prefilled == len(follow_up) - stream.stats.reused


def test_closing_a_stream_takes_its_sequence_out_of_the_batch(engine):
    stream = engine.generate(prompt(8), max_tokens=2000, temperature=0)
    next(stream)
    assert engine.running == 1
    stream.close()
    for _ in range(200):
        if engine.running == 0:
            break
        threading.Event().wait(0.01)
    assert engine.running == 0
    assert list(engine.generate(prompt(8), max_tokens=3, temperature=0))  # still serving


def test_bad_requests_fail_at_the_call_and_a_closed_engine_refuses_new_ones(engine, model):
    with pytest.raises(ValueError, match="outside this checkpoint's vocabulary"):
        engine.generate([model.config.vocab_size], max_tokens=2)
    with pytest.raises(ValueError, match="exceeds the context"):
        engine.generate([1], max_tokens=model.max_context)
    engine.close()
    with pytest.raises(EngineClosed):
        next(engine.generate([1, 2], max_tokens=2))


def test_closing_a_waiting_stream_from_another_thread_wakes_its_reader(model):
    engine = BatchedEngine(model, max_batch=1)
    try:
        running = engine.generate(prompt(8), max_tokens=2000, temperature=0)
        next(running)
        waiting = engine.generate(prompt(8, seed=1), max_tokens=5, temperature=0)
        got = []
        reader = threading.Thread(target=lambda: got.extend(waiting))
        reader.start()
        while engine.waiting == 0:
            threading.Event().wait(0.01)
        waiting.close()
        reader.join(timeout=5)
        assert not reader.is_alive() and got == []
        running.close()
    finally:
        engine.close()
