"""Cached generation: equal to full forwards, prefix reuse across calls, sampling, stops."""

import pytest
import torch
from runtime_helpers import prompt

from runtime import load_model
from runtime.generate import LocalModel


@pytest.fixture(scope="module")
def model(tiny_original):
    return load_model(tiny_original, dtype=torch.float32)


def greedy_by_full_forwards(model, tokens: list[int], generated: list[int]) -> list[int]:
    """What greedy decoding picks at each step, from one causal forward of the whole
    sequence (equal to re-running the full forward per step)."""
    logits = model.logits(tokens + generated[:-1])
    return logits[len(tokens) - 1 :].argmax(-1).tolist()


@pytest.mark.parametrize("length", [5, 40, 4200])
def test_greedy_with_cache_equals_full_forwards(model, length):
    """Short, past the sliding window (16), and past position 4,096."""
    tokens = prompt(length, seed=length)
    out = list(model.generate(tokens, max_tokens=12, temperature=0))
    assert len(out) == 12
    assert out == greedy_by_full_forwards(model, tokens, out)


def test_static_decode_path_gives_the_same_tokens(tiny_original, model):
    """The CUDA path (preallocated cache, statically shaped expert gather) on the CPU."""
    static = LocalModel(model.transformer, static=True, max_context=512)
    tokens = prompt(40, seed=4)
    out = list(static.generate(tokens, max_tokens=10, temperature=0))
    assert out == greedy_by_full_forwards(model, tokens, out)
    assert all(cache.slots in (16, 512) for cache in static.caches)


def test_decode_step_traces_as_one_graph(model):
    """What torch.compile(mode="reduce-overhead") needs on CUDA: no graph breaks."""
    static = LocalModel(model.transformer, static=True, max_context=256)
    static._decode = torch.compile(static._decode_step, backend="eager", fullgraph=True)
    tokens = prompt(30, seed=5)
    out = list(static.generate(tokens, max_tokens=4, temperature=0))
    assert out == greedy_by_full_forwards(model, tokens, out)


def test_cache_is_reused_across_calls_like_an_agent_turn(model):
    model.reset()
    first = prompt(50, seed=6)
    reply = list(model.generate(first, max_tokens=8, temperature=0))
    assert model.last_stats.reused == 0 and model.last_stats.prefilled == 50
    turn = first + reply + prompt(20, seed=7)  # the reply, then a tool's output
    again = list(model.generate(turn, max_tokens=8, temperature=0))
    stats = model.last_stats
    # Everything but the last generated token (never fed back) came from the cache.
    assert (stats.reused, stats.prefilled) == (50 + 7, 21)
    assert stats.prompt_tokens == len(turn) and stats.generated == 8
    model.reset()
    assert list(model.generate(turn, max_tokens=8, temperature=0)) == again
    assert model.last_stats.reused == 0


def test_cache_survives_a_generation_closed_early(model):
    """A timeout or a cancel closes the stream between steps: what went through the model
    stays cached, and the next call prefills only what is new."""
    model.reset()
    tokens = prompt(40, seed=14)
    stream = model.generate(tokens, max_tokens=20, temperature=0)
    taken = [next(stream) for _ in range(5)]
    stream.close()
    follow = tokens + taken + prompt(6, seed=15)
    out = list(model.generate(follow, max_tokens=4, temperature=0))
    # The prompt and the 4 tokens decoded after it are reused; the 5th was never fed.
    assert (model.last_stats.reused, model.last_stats.prefilled) == (40 + 4, 1 + 6)
    assert out == greedy_by_full_forwards(model, follow, out)


def test_rollback_within_the_window_and_full_reprefill_past_it(model):
    model.reset()
    tokens = prompt(60, seed=8)
    list(model.generate(tokens, max_tokens=1, temperature=0))
    # Same prompt again: the last token is re-run for its logits, the rest reused.
    out = list(model.generate(tokens, max_tokens=6, temperature=0))
    assert (model.last_stats.reused, model.last_stats.prefilled) == (59, 1)
    assert out == greedy_by_full_forwards(model, tokens, out)
    # Diverging 20 tokens back: the ring (16 positions) no longer holds what is needed.
    edited = tokens[:40] + prompt(10, seed=9)
    out = list(model.generate(edited, max_tokens=6, temperature=0))
    assert (model.last_stats.reused, model.last_stats.prefilled) == (0, 50)
    assert out == greedy_by_full_forwards(model, edited, out)
    # Diverging early enough that the ring never wrapped past it: reuse what matches.
    short = prompt(10, seed=10)
    list(model.generate(short, max_tokens=1, temperature=0))
    changed = [*short[:8], 1, 2, 3]
    out = list(model.generate(changed, max_tokens=6, temperature=0))
    assert model.last_stats.reused == 8
    assert out == greedy_by_full_forwards(model, changed, out)


def test_stop_token_is_yielded_then_generation_ends(model):
    tokens = prompt(20, seed=11)
    free = list(model.generate(tokens, max_tokens=8, temperature=0))
    stopped = list(model.generate(tokens, max_tokens=8, temperature=0, stop_tokens=[free[3]]))
    assert stopped == free[: free.index(free[3]) + 1]


def test_sampling_is_seeded_and_top_p_narrows_it(model):
    tokens = prompt(20, seed=12)
    a = list(model.generate(tokens, max_tokens=10, temperature=1.0, seed=7))
    b = list(model.generate(tokens, max_tokens=10, temperature=1.0, seed=7))
    c = list(model.generate(tokens, max_tokens=10, temperature=1.0, seed=8))
    assert a == b and a != c
    greedy = list(model.generate(tokens, max_tokens=10, temperature=0))
    assert list(model.generate(tokens, max_tokens=10, top_p=1e-6, seed=1)) == greedy


def test_stats_time_prefill_and_decode(model):
    list(model.generate(prompt(30, seed=13), max_tokens=5, temperature=0))
    stats = model.last_stats
    assert stats.generated == 5 and stats.prefill_seconds > 0 and stats.decode_seconds > 0
    assert stats.decode_tokens_per_second > 0


def test_bad_requests_raise(model):
    with pytest.raises(ValueError, match="at least one"):
        model.generate([], max_tokens=1)
    with pytest.raises(ValueError, match="outside this checkpoint's vocabulary"):
        list(model.generate([10**6], max_tokens=1))
    with pytest.raises(ValueError, match="exceeds the context"):
        model.generate([1], max_tokens=10**7)
