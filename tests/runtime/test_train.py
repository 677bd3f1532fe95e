"""Training: assistant-only loss, the exact full-vocabulary loss, resumption, export."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from agent.harmony import Conversation, HarmonyEncodingName, Role, load_harmony_encoding
from runtime import load_model
from runtime.config import PRESETS
from runtime.nano.data import Setting, transcript
from runtime.nano.tasks import Task
from runtime.train import (
    ConversationError,
    TrainConfig,
    Trainer,
    exact_vocab_loss,
    render_example,
    starting_point,
    trainable,
)

# The nano shape, smaller still: 2 layers (one sliding, one full), 2 of 4 experts.
SMALL = dataclasses.replace(PRESETS["nano"], num_hidden_layers=2, hidden_size=64, head_dim=16)
ENCODING = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def conversations(count: int):
    """Solved tasks with known python outputs (no sandbox needed to build them)."""
    out = []
    for n in range(count):
        a, b = 10 + n, 7 + 3 * n
        task = Task(
            question=f"What is {a} * {b}?",
            code=f"{a} * {b}",
            setup=f"The user wants the value of {a} * {b}.",
            final=f"{a} * {b} = **{{result}}**.",
            kind="arithmetic",
        )
        setting = Setting(("low", "medium", "high")[n % 3], f"2026-01-0{1 + n % 9}", None, False)
        out.append(transcript(task, setting, f"{a * b}\n"))
    return out


def trainer(tmp_path, steps: int = 6, **changes) -> Trainer:
    sequences = [render_example(ENCODING, c) for c in conversations(8)]
    tokens = {t for sequence, _ in sequences for t in sequence}
    config, tensors, vocab = starting_point(SMALL, tokens, seed=0)
    options = {"steps": steps, "batch_size": 4, "lr": 1e-2, "warmup": 2, "threads": 1}
    return Trainer(config, tensors, vocab, sequences, TrainConfig(**(options | changes)), tmp_path)


def test_only_the_assistant_turns_are_targets():
    conversation = conversations(1)[0]
    tokens, targets = render_example(ENCODING, conversation)
    learned = ENCODING.decode([t for t, wanted in zip(tokens, targets, strict=True) if wanted])
    assert learned == (
        "<|channel|>analysis<|message|>Use python.<|end|>"
        "<|start|>assistant to=python<|channel|>analysis code<|message|>10 * 7<|call|>"
        "<|channel|>final<|message|>10 * 7 = **70**.<|return|>"
    )
    # Everything up to the first turn's prompt (system, user) is context, never a target.
    user = conversation.messages[
        : [m.author.role.value for m in conversation.messages].index("user") + 1
    ]
    prompt = ENCODING.render_conversation_for_completion(
        Conversation.from_messages(user), Role.ASSISTANT
    )
    assert (
        tokens[: len(prompt)] == prompt and not any(targets[: len(prompt)]) and targets[len(prompt)]
    )


def test_a_conversation_without_assistant_messages_is_refused():
    messages = [m for m in conversations(1)[0].messages if m.author.role != Role.ASSISTANT]
    with pytest.raises(ConversationError, match="no assistant message"):
        render_example(ENCODING, Conversation.from_messages(messages))


def test_exact_vocabulary_loss_equals_the_full_softmax_loss():
    """Zero rows give logits of exactly 0: the loss over the nonzero rows plus the
    analytic term for the others is the full softmax cross-entropy."""
    generator = torch.Generator().manual_seed(0)
    vocab_size, hidden = 5000, 32
    rows = torch.randperm(vocab_size, generator=generator)[:300].sort().values
    unembedding = torch.zeros(vocab_size, hidden)
    unembedding[rows] = torch.randn(len(rows), hidden, generator=generator) * 0.3
    states = torch.randn(40, hidden, generator=generator)
    targets = torch.randint(0, len(rows), (40,), generator=generator)
    full = F.cross_entropy(states @ unembedding.T, rows[targets])
    exact = exact_vocab_loss(states @ unembedding[rows].T, targets, vocab_size)
    assert torch.allclose(exact, full, rtol=1e-6, atol=0)
    assert not torch.allclose(F.cross_entropy(states @ unembedding[rows].T, targets), full)


def test_a_fresh_model_copies_the_token_a_head_attends_to():
    """From the first layer on, a head's values and output start as the identity on its
    slice of the residual: a head that can only see one token (the first position, its
    sink weighed out) adds that token's normed representation, and the unembedding, a
    copy of the embedding, then ranks that token first."""
    config, tensors, _ = starting_point(SMALL, set(range(40)), seed=0)
    model = trainable(config, tensors)
    attention = model.blocks[1].attn
    with torch.no_grad():
        attention.sinks.fill_(-1e4)
        x = model.embedding[torch.tensor([7, 3, 9])]
        rope = model.rotary(torch.arange(3), x.dtype)
        added = attention(x, torch.arange(3), rope, None) - x
        assert torch.allclose(added[0], attention.norm(x)[0], atol=1e-5)
        logits = F.linear(model.norm(added[:1]), model.unembedding)
    assert logits.argmax().item() == 7
    assert not torch.allclose(added[1], attention.norm(x)[1], atol=1e-3)  # it mixes two


def test_a_fresh_first_layer_hands_each_position_the_token_before_it():
    """The first layer's first KV group starts attending to the previous position whatever
    the tokens (its q and k biases make a RoPE score that peaks at offset 1 across the
    window) and adds half of that token's normed first slice to the second slice."""
    config, tensors, _ = starting_point(SMALL, set(range(40)), seed=0)
    model = trainable(config, tensors)
    attention, d = model.blocks[0].attn, config.head_dim
    group = config.num_attention_heads // config.num_key_value_heads
    positions = torch.arange(config.sliding_window)
    with torch.no_grad():
        attention.out.weight[:, group * d :] = 0.0  # keep only the previous-token heads
        x = model.embedding[
            torch.randint(0, 40, (len(positions),), generator=torch.Generator().manual_seed(0))
        ]
        added = attention(x, positions, model.rotary(positions, x.dtype), None) - x
        before = attention.norm(x)[:-1, :d]
    assert torch.allclose(added[1:, d : 2 * d], 0.5 * before, atol=5e-3)
    assert added[:, :d].abs().max() == 0 and added[:, 2 * d :].abs().max() == 0


def test_a_few_steps_lower_the_loss(tmp_path):
    run = trainer(tmp_path)
    run.run(log=lambda line: None)
    assert run.losses[-1] < 0.8 * run.losses[0]
    assert run.losses[0] == pytest.approx(torch.log(torch.tensor(201088.0)).item(), rel=0.05)


def test_a_resumed_run_continues_identically(tmp_path):
    straight = trainer(tmp_path / "straight")
    for _ in range(4):
        straight.train_step()
    interrupted = trainer(tmp_path / "resumed")
    interrupted.train_step()
    interrupted.train_step()
    interrupted.save()
    resumed = trainer(tmp_path / "resumed")
    assert resumed.resume() and resumed.step == 2
    resumed.train_step()
    resumed.train_step()
    assert resumed.losses == straight.losses
    for name, master in straight.masters.items():
        assert torch.equal(resumed.masters[name], master), name


def test_rows_of_unseen_tokens_stay_zero_in_the_exported_checkpoint(tmp_path):
    run = trainer(tmp_path, steps=2)
    run.run(log=lambda line: None)
    model = load_model(run.export(tmp_path / "model"), dtype=torch.float32)
    embedding, unembedding = model.transformer.embedding, model.transformer.unembedding
    unseen = torch.ones(SMALL.vocab_size, dtype=torch.bool)
    unseen[run.vocab] = False
    assert not embedding[unseen].any() and not unembedding[unseen].any()
    assert unembedding[run.vocab].abs().sum(-1).min() > 0


def test_the_exported_checkpoint_computes_what_was_trained(tmp_path):
    """bf16 weights and MXFP4 experts during training: the runtime loading the exported
    files gives the trainer's logits."""
    run = trainer(tmp_path, steps=3)
    run.run(log=lambda line: None)
    model = load_model(run.export(tmp_path / "model"), dtype=torch.float32)
    example = run.examples[0]
    with torch.no_grad():
        for block in run.model.blocks:
            block.mlp.requantize()
        hidden = run.model.hidden(example.tokens, torch.arange(len(example.tokens)))
        trained = F.linear(run.model.norm(hidden), run.model.unembedding)
    loaded = model.logits(run.vocab[example.tokens].tolist())[:, run.vocab]
    assert (loaded - trained).abs().max() <= 1e-4 * trained.abs().max()


def test_fine_tuning_starts_from_the_checkpoint(tmp_path):
    """A checkpoint as the starting point: its weights, its nonzero rows kept trainable."""
    run = trainer(tmp_path, steps=2)
    run.run(log=lambda line: None)
    exported = run.export(tmp_path / "model")
    config, tensors, vocab = starting_point(exported, set(), seed=0)
    assert config == SMALL and torch.equal(vocab, run.vocab)
    assert torch.equal(
        tensors["block.1.attn.sinks"], run.masters["block.1.attn.sinks"].bfloat16().float()
    )


def test_train_command_trains_resumes_and_writes_a_checkpoint(tmp_path):
    from typer.testing import CliRunner

    from runtime.cli import model_app

    data = tmp_path / "data.jsonl"
    data.write_text("".join(c.to_json() + "\n" for c in conversations(2)))
    command = ["train", str(data), "--out", str(tmp_path / "run"), "--init", "nano"]
    command += ["--steps", "2", "--batch-size", "2", "--threads", "1"]
    done = CliRunner().invoke(model_app, command)
    assert done.exit_code == 0, done.output
    assert "step 2/2" in done.output and "final loss" in done.output
    assert load_model(tmp_path / "run" / "model").config == PRESETS["nano"]
    again = CliRunner().invoke(model_app, [*command[:-4], "--steps", "3", "--threads", "1"])
    assert "resumed from" in again.output and "step 3/3" in again.output, again.output


def test_train_command_names_the_line_that_is_not_a_conversation(tmp_path):
    from typer.testing import CliRunner

    from runtime.cli import model_app

    data = tmp_path / "data.jsonl"
    data.write_text(conversations(1)[0].to_json() + "\n{not json\n")
    done = CliRunner().invoke(
        model_app, ["train", str(data), "--out", str(tmp_path), "--init", "nano"]
    )
    assert done.exit_code == 1 and f"{data}:2: not a harmony conversation" in done.output
