"""Training and fine-tuning gpt-oss models on rendered harmony conversations.

The model is the runtime's own `Transformer` (built by `runtime.load.build`), made
trainable: its tensors are fp32 parameters and each MoE layer computes its experts from
fp32 master weights fake-quantized to MXFP4 (straight-through gradients), so the exported
checkpoint with packed experts computes what was trained.

The loss is taken on assistant tokens only (what the model samples), and logits are
computed only at those positions. Rows of the embedding and unembedding whose tokens never
occur stay exactly zero and are not parameters at all: a zero unembedding row gives a
logit of exactly 0, so the full-vocabulary softmax is the softmax over the trained rows
plus (vocab - trained) * exp(0) in the denominator. The loss is exact at the cost of the
trained rows alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from agent.harmony import (
    Conversation,
    HarmonyEncoding,
    HarmonyEncodingName,
    RenderConversationConfig,
    Role,
    load_harmony_encoding,
)
from runtime.config import ModelConfig
from runtime.load import build, tensor_shapes
from runtime.model import Transformer, yarn_inv_freq
from runtime.moe import MoE
from runtime.mxfp4 import dequantize, quantize
from runtime.save import save_checkpoint

CHECKPOINT = "checkpoint.pt"
EXPERT_WEIGHTS = ("mlp1_weight", "mlp2_weight")


# -- data ---------------------------------------------------------------------------------


class ConversationError(ValueError):
    """A conversation that cannot be turned into a training example."""


def render_example(
    encoding: HarmonyEncoding, conversation: Conversation
) -> tuple[list[int], list[bool]]:
    """The conversation's tokens and, per token, whether the model is trained to produce it.

    Each run of assistant messages is one sampled turn: its prompt is the conversation so
    far rendered for completion (as the agent renders it), and every token after that
    prompt up to the turn's `<|call|>` / `<|end|>` / `<|return|>` is a target.
    """
    messages = list(conversation.messages)
    keep_all = RenderConversationConfig(auto_drop_analysis=False)
    tokens = encoding.render_conversation_for_training(conversation, keep_all)
    targets = [False] * len(tokens)
    index = 0
    while index < len(messages):
        if messages[index].author.role != Role.ASSISTANT:
            index += 1
            continue
        end = index
        while end < len(messages) and messages[end].author.role == Role.ASSISTANT:
            end += 1
        before = Conversation.from_messages(messages[:index])
        prompt = encoding.render_conversation_for_completion(before, Role.ASSISTANT)
        if tokens[: len(prompt)] != prompt:
            raise ConversationError(
                f"the prompt of the assistant turn at message {index} is not a prefix of the "
                "whole conversation (earlier chain of thought is dropped after a final "
                "answer); give each final answer its own conversation"
            )
        stop = len(
            encoding.render_conversation(Conversation.from_messages(messages[:end]), keep_all)
        )
        for position in range(len(prompt), stop):
            targets[position] = True
        index = end
    if not any(targets):
        raise ConversationError("the conversation has no assistant message to learn")
    return tokens, targets


def read_conversations(path: str | Path) -> list[Conversation]:
    """A JSONL file, one harmony `Conversation` (its JSON form) per line."""
    conversations = []
    with Path(path).open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                conversations.append(Conversation.from_json(line))
            except Exception as error:
                raise ConversationError(
                    f"{path}:{number}: not a harmony conversation ({error})"
                ) from error
    if not conversations:
        raise ConversationError(f"{path}: no conversations")
    return conversations


# -- the exact full-vocabulary loss -------------------------------------------------------


def exact_vocab_loss(
    logits: torch.Tensor, targets: torch.Tensor, vocab_size: int, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over the whole vocabulary from the logits of its nonzero rows only.

    `logits` [N, S] are those of the S trained rows and `targets` index them; the other
    vocab_size - S rows are zero, so their logits are exactly 0 and each adds exp(0) = 1
    to the softmax denominator.
    """
    zeros = vocab_size - logits.shape[-1]
    norm = torch.logsumexp(logits.float(), dim=-1)
    if zeros > 0:
        norm = torch.logaddexp(norm, torch.tensor(math.log(zeros), device=logits.device))
    losses = norm - logits.float().gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return losses.mean() if reduction == "mean" else losses.sum()


# -- the trainable model ------------------------------------------------------------------


def fake_quantize(weight: torch.Tensor) -> torch.Tensor:
    """The MXFP4 value of `weight` going forward, the identity going backward."""
    packed = dequantize(*quantize(weight.detach()), weight.dtype)
    return weight + (packed - weight).detach()


class TrainableMoE(MoE):
    """The runtime's MoE with fp32 master experts instead of packed ones.

    Routing, the clamped SwiGLU and the expert mix are the runtime's own code; only where
    an expert's weights come from differs: the master weights, fake-quantized once per
    optimizer step (`requantize`).
    """

    packed_experts = False  # no packed weights for the CPU kernels: experts run unpacked

    def __init__(self, packed: MoE, mlp1_weight: torch.Tensor, mlp2_weight: torch.Tensor) -> None:
        super().__init__(
            packed.layer, packed.norm, packed.gate, {}, packed.top_k, packed.swiglu_limit
        )
        self.mlp1_weight = torch.nn.Parameter(mlp1_weight.float().clone())
        self.mlp2_weight = torch.nn.Parameter(mlp2_weight.float().clone())
        self.mlp1_bias = torch.nn.Parameter(packed.mlp1_bias.float().clone())
        self.mlp2_bias = torch.nn.Parameter(packed.mlp2_bias.float().clone())
        self._quantized: tuple[torch.Tensor, torch.Tensor] | None = None

    def requantize(self) -> None:
        """Fake-quantize the experts for the next forwards (after each optimizer step)."""
        self._quantized = (fake_quantize(self.mlp1_weight), fake_quantize(self.mlp2_weight))

    def _unpack(self, e: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if self._quantized is None:
            self.requantize()
        w1, w2 = self._quantized  # type: ignore[misc]
        return w1[e].to(dtype), w2[e].to(dtype)


class _Tensors:
    """A checkpoint-like view of named tensors (fp32 experts packed on read), for `build`."""

    layout = "original"

    def __init__(self, config: ModelConfig, tensors: Mapping[str, torch.Tensor]) -> None:
        self.config, self.tensors, self.path = config, tensors, Path("<memory>")

    def get(self, name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        if name.endswith((".blocks", ".scales")):
            base, part = name.rsplit(".", 1)
            packed = dict(zip(("blocks", "scales"), quantize(self.tensors[base]), strict=True))
            return packed[part]
        tensor = self.tensors[name]
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            raise ValueError(
                f"tensor {name!r} has shape {list(tensor.shape)}, expected {list(shape)}"
            )
        return tensor


def master_names(config: ModelConfig) -> list[str]:
    """The trained tensors: the original layout's names, experts as one unpacked weight."""
    names = []
    for name in tensor_shapes(config):
        if name.endswith(".blocks"):
            names.append(name[: -len(".blocks")])
        elif not name.endswith(".scales"):
            names.append(name)
    return names


def trainable(config: ModelConfig, tensors: Mapping[str, torch.Tensor]) -> Transformer:
    """The runtime Transformer over fp32 copies of `tensors` (named as `master_names`; the
    embedding and unembedding may hold any number of rows), every tensor a parameter."""
    rows = tensors["embedding.weight"].shape[0]
    shaped = dataclasses.replace(config, vocab_size=rows)
    model = build(_Tensors(shaped, tensors), torch.float32, torch.device("cpu"))
    for n, block in enumerate(model.blocks):
        p = f"block.{n}.mlp"
        block.mlp = TrainableMoE(
            block.mlp, tensors[f"{p}.mlp1_weight"], tensors[f"{p}.mlp2_weight"]
        )
    for parameter in model.parameters():
        parameter.data = parameter.data.float().clone()
        parameter.requires_grad_(True)
    return model


def named_tensors(model: Transformer) -> dict[str, torch.Tensor]:
    """The model's parameters under `master_names`."""
    out = {
        "embedding.weight": model.embedding,
        "norm.scale": model.norm.scale,
        "unembedding.weight": model.unembedding,
    }
    for n, block in enumerate(model.blocks):
        attn, mlp = block.attn, block.mlp
        p = f"block.{n}"
        out |= {
            f"{p}.attn.norm.scale": attn.norm.scale,
            f"{p}.attn.qkv.weight": attn.qkv.weight,
            f"{p}.attn.qkv.bias": attn.qkv.bias,
            f"{p}.attn.sinks": attn.sinks,
            f"{p}.attn.out.weight": attn.out.weight,
            f"{p}.attn.out.bias": attn.out.bias,
            f"{p}.mlp.norm.scale": mlp.norm.scale,
            f"{p}.mlp.gate.weight": mlp.gate.weight,
            f"{p}.mlp.gate.bias": mlp.gate.bias,
            f"{p}.mlp.mlp1_weight": mlp.mlp1_weight,
            f"{p}.mlp.mlp1_bias": mlp.mlp1_bias,
            f"{p}.mlp.mlp2_weight": mlp.mlp2_weight,
            f"{p}.mlp.mlp2_bias": mlp.mlp2_bias,
        }
    return out


def initial_tensors(config: ModelConfig, rows: int, seed: int) -> dict[str, torch.Tensor]:
    """Fresh weights: unit-RMS embeddings (the unembedding a scaled copy), fan-in scaled
    linears, residual outputs scaled down with depth, zero biases and sinks, unit norm
    scales; a previous-token head in the first layer and copying heads after it."""
    generator = torch.Generator().manual_seed(seed)
    depth = 1 / math.sqrt(2 * config.num_hidden_layers)
    out = {}
    for name in master_names(config):
        if name in ("embedding.weight", "unembedding.weight"):
            shape: tuple[int, ...] = (rows, config.hidden_size)
        elif name.endswith("mlp1_weight"):
            shape = (config.num_experts, 2 * config.intermediate_size, config.hidden_size)
        elif name.endswith("mlp2_weight"):
            shape = (config.num_experts, config.hidden_size, config.intermediate_size)
        else:
            shape = tensor_shapes(config)[name]
        if name.endswith("norm.scale"):
            tensor = torch.ones(shape)
        elif name.endswith(("bias", "sinks")):
            tensor = torch.zeros(shape)
        else:
            std = 1.0 if name == "embedding.weight" else 1 / math.sqrt(shape[-1])
            if name.endswith(("attn.out.weight", "mlp2_weight")):
                std *= depth
            tensor = torch.randn(shape, generator=generator) * std
        out[name] = tensor
    # The unembedding starts as the embedding (scaled): copying a token from the context,
    # most of what a tool-using model does with numbers, is then one map for all tokens,
    # not one row to learn per token.
    out["unembedding.weight"] = out["embedding.weight"] / math.sqrt(config.hidden_size)
    for layer in range(1, config.num_hidden_layers):
        copying_heads(config, out, layer)
    previous_token_head(config, out, layer=0)
    return out


def copying_heads(config: ModelConfig, tensors: dict[str, torch.Tensor], layer: int) -> None:
    """Start the layer's attention as a copier: each KV head's values are its own slice of
    the (normed) residual and each query head writes its mix back into that slice, so a
    head that attends to a token adds that token's representation to the reader's.

    With the unembedding starting as the embedding, a head then predicts whatever token it
    attends to from the first step, and training only has to learn where to look; learned
    from random values, copying numbers stayed at chance for hundreds of steps. Needs
    num_key_value_heads * head_dim == hidden_size; other shapes keep the random start.
    """
    hidden, d = config.hidden_size, config.head_dim
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    if kv_heads * d != hidden:
        return
    group = heads // kv_heads
    qkv = tensors[f"block.{layer}.attn.qkv.weight"]
    qkv[(heads + kv_heads) * d :] = torch.eye(hidden)  # the value rows
    out = torch.zeros(hidden, heads * d)
    for head in range(heads):
        kv = head // group
        out[kv * d : (kv + 1) * d, head * d : (head + 1) * d] = torch.eye(d) / group
    tensors[f"block.{layer}.attn.out.weight"] = out


# Logits between the token just before a position and any other in the window, at the start.
PREVIOUS_TOKEN_MARGIN = 8.0


def previous_token_head(config: ModelConfig, tensors: dict[str, torch.Tensor], layer: int) -> None:
    """Start the layer's first KV group attending to the token just before each position and
    adding half of that token's (normed) first slice to the residual's second slice.

    Copying a number of several tokens needs, at each step, the token that followed the one
    just written; a later head can look it up only if each position already carries what
    preceded it (with this start nano's first training phase reached a loss of 0.17 at step
    300 instead of 0.29). The pattern comes from the q and k biases alone (their weights start
    at zero): RoPE turns them into a score of the offset, sum_i w_i cos((offset - 1) theta_i),
    highest at offset 1; w_i grows as sqrt(theta_i), so the fast pairs separate neighbours
    and the slow ones keep distant offsets from lining up again. Needs the same shapes as
    `copying_heads` and at least two KV heads.
    """
    hidden, d = config.hidden_size, config.head_dim
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    if kv_heads * d != hidden or kv_heads < 2:
        return
    group = heads // kv_heads
    inv_freq, concentration = yarn_inv_freq(config)
    weights = inv_freq.sqrt() / inv_freq.sqrt().sum()
    window = config.sliding_window if config.is_sliding(layer) else config.initial_context_length
    offsets = torch.arange(window, dtype=torch.float32).unsqueeze(-1)
    scores = (torch.cos((offsets - 1) * inv_freq) * weights).sum(-1)
    gap = scores[1] - torch.cat([scores[:1], scores[2:]]).max()
    amplitude = (weights * PREVIOUS_TOKEN_MARGIN * math.sqrt(d) / (concentration**2 * gap)).sqrt()
    qkv, bias = tensors[f"block.{layer}.attn.qkv.weight"], tensors[f"block.{layer}.attn.qkv.bias"]
    queries, key = slice(0, group * d), slice(heads * d, (heads + 1) * d)
    value = slice((heads + kv_heads) * d, (heads + kv_heads + 1) * d)
    qkv[queries], qkv[key] = 0.0, 0.0
    bias[queries] = torch.cat([amplitude, torch.zeros_like(amplitude)]).repeat(group)
    bias[key] = torch.cat([amplitude * torch.cos(inv_freq), amplitude * torch.sin(inv_freq)])
    qkv[value] = torch.eye(hidden)[:d]
    out = tensors[f"block.{layer}.attn.out.weight"]
    out[:, queries] = 0.0
    out[d : 2 * d, queries] = torch.eye(d).repeat(1, group) * 0.5 / group


# -- checkpoints: the trainer's and the standard one ----------------------------------------


def standard_tensors(
    config: ModelConfig, tensors: Mapping[str, torch.Tensor], vocab: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors in stored dtypes: full-vocabulary embeddings (zero rows for
    tokens not in `vocab`), packed MXFP4 experts, bf16 elsewhere, fp32 norm scales."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().float()
        if name in ("embedding.weight", "unembedding.weight"):
            full = torch.zeros(config.vocab_size, config.hidden_size)
            full[vocab] = tensor
            out[name] = full.to(torch.bfloat16)
        elif name.rsplit(".", 1)[-1] in EXPERT_WEIGHTS:
            out[f"{name}.blocks"], out[f"{name}.scales"] = quantize(tensor)
        elif name.endswith("norm.scale"):
            out[name] = tensor
        else:
            out[name] = tensor.to(torch.bfloat16)
    return out


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters; with the same data, seed and torch version, the same weights."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 50
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.0
    clip: float = 1.0
    seed: int = 0
    save_every: int = 100
    log_every: int = 10
    threads: int | None = None


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


@dataclass
class Example:
    tokens: torch.Tensor  # compact ids (indexes into the trainer's vocab)
    positions: torch.Tensor  # where a next-token loss is taken
    targets: torch.Tensor  # the compact ids expected there


class Trainer:
    """Trains `model` on examples, saving a resumable checkpoint to `out` as it goes."""

    def __init__(
        self,
        model_config: ModelConfig,
        tensors: Mapping[str, torch.Tensor],
        vocab: torch.Tensor,
        sequences: Sequence[tuple[list[int], list[bool]]],
        config: TrainConfig,
        out: str | Path,
    ) -> None:
        self.model_config, self.config, self.out = model_config, config, Path(out)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.vocab = vocab
        self.model = trainable(model_config, tensors)
        self.named = named_tensors(self.model)
        names = master_names(model_config)
        self.parameters = [self.named[name] for name in names]
        # The optimizer updates fp32 masters; the model computes with them rounded as the
        # checkpoint stores them (bf16), so the exported model is the one trained.
        self.masters = {name: self.named[name].detach().clone() for name in names}
        self.optimizer = torch.optim.AdamW(
            list(self.masters.values()),
            lr=config.lr,
            betas=(0.9, 0.95),
            weight_decay=config.weight_decay,
        )
        self._round()
        self.examples = [self._example(tokens, targets) for tokens, targets in sequences]
        self.step = 0
        self.losses: list[float] = []

    def _example(self, tokens: list[int], targets: list[bool]) -> Example:
        ids = torch.tensor(tokens)
        compact = torch.searchsorted(self.vocab, ids)
        if not torch.equal(self.vocab[compact.clamp(max=len(self.vocab) - 1)], ids):
            raise ValueError("an example holds a token outside the trained vocabulary")
        wanted = torch.tensor(targets)
        positions = torch.nonzero(wanted[1:]).squeeze(-1)
        return Example(compact, positions, compact[positions + 1])

    def batch(self, step: int) -> list[Example]:
        """The examples of `step`: a fresh permutation every epoch, a function of the seed."""
        size, count = self.config.batch_size, len(self.examples)
        picked = []
        for slot in range(step * size, (step + 1) * size):
            epoch, offset = divmod(slot, count)
            order = list(range(count))
            random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
            picked.append(self.examples[order[offset]])
        return picked

    def loss(self, examples: Iterable[Example]) -> tuple[torch.Tensor, int]:
        """Summed loss over the examples' target tokens, and how many there were."""
        total, count = torch.zeros(()), 0
        for example in examples:
            positions = torch.arange(len(example.tokens))
            hidden = self.model.hidden(example.tokens, positions)[example.positions]
            logits = F.linear(self.model.norm(hidden), self.model.unembedding)
            total = total + exact_vocab_loss(
                logits, example.targets, self.model_config.vocab_size, reduction="sum"
            )
            count += len(example.targets)
        return total, count

    def train_step(self) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self.step)
        for block in self.model.blocks:
            block.mlp.requantize()
        total, count = self.loss(self.batch(self.step))
        loss = total / count
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, self.config.clip)
        for name, master in self.masters.items():
            master.grad = self.named[name].grad
        self.optimizer.step()
        self._round()
        self.step += 1
        self.losses.append(loss.item())
        return self.losses[-1]

    def run(self, log=None) -> None:
        """Train up to `config.steps`, logging progress and saving every `save_every`."""
        log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        started, first = time.perf_counter(), self.step
        while self.step < self.config.steps:
            loss = self.train_step()
            if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                elapsed = time.perf_counter() - started
                rate = (self.step - first) / elapsed
                eta = (self.config.steps - self.step) / rate if rate else 0.0
                recent = self.losses[-self.config.log_every :]
                log(
                    f"step {self.step}/{self.config.steps}  loss {sum(recent) / len(recent):.4f}"
                    f"  (last {loss:.4f})  lr {learning_rate(self.config, self.step - 1):.2e}"
                    f"  {elapsed:.0f}s elapsed, eta {eta:.0f}s"
                )
            if self.step % self.config.save_every == 0 or self.step == self.config.steps:
                self.save()

    @torch.no_grad()
    def _round(self) -> None:
        """Set the model's weights to the masters as stored: bf16, but fp32 norm scales
        and experts (those are fake-quantized to MXFP4 in the forward)."""
        for name, master in self.masters.items():
            kept = name.endswith("norm.scale") or name.rsplit(".", 1)[-1] in EXPERT_WEIGHTS
            self.named[name].copy_(master if kept else master.to(torch.bfloat16).float())

    # -- the trainer's checkpoint ---------------------------------------------------------

    def save(self) -> Path:
        """Everything needed to continue exactly: weights, optimizer, step, losses."""
        self.out.mkdir(parents=True, exist_ok=True)
        state = {
            "step": self.step,
            "model_config": self.model_config.to_original(),
            "train_config": dataclasses.asdict(self.config),
            "vocab": self.vocab,
            "tensors": {name: t.clone() for name, t in self.masters.items()},
            "optimizer": self.optimizer.state_dict(),
            "losses": self.losses,
        }
        path = self.out / CHECKPOINT
        partial = path.with_suffix(".partial")
        torch.save(state, partial)
        os.replace(partial, path)
        return path

    def resume(self) -> bool:
        """Continue from `out`'s checkpoint, if there is one; True when resumed."""
        path = self.out / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, weights_only=True)
        if not torch.equal(state["vocab"], self.vocab):
            raise ValueError(
                f"{path} was trained on other data (another vocabulary); use a new --out"
            )
        with torch.no_grad():
            for name, tensor in state["tensors"].items():
                self.masters[name].copy_(tensor)
        self._round()
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.losses = state["step"], list(state["losses"])
        return True

    def export(self, path: str | Path, layout: str = "original") -> Path:
        """A standard gpt-oss checkpoint of the current weights."""
        tensors = standard_tensors(self.model_config, self.masters, self.vocab)
        return save_checkpoint(path, self.model_config, tensors, layout)


# -- entry points -------------------------------------------------------------------------


def starting_point(
    init: str | Path | ModelConfig, data_tokens: set[int], seed: int
) -> tuple[ModelConfig, dict[str, torch.Tensor], torch.Tensor]:
    """The model config, master tensors (embedding rows restricted to the trained
    vocabulary) and that vocabulary, for training from scratch (a config) or from a
    checkpoint (fine-tuning: its nonzero rows stay trained, its zero rows stay zero unless
    the data uses them)."""
    if isinstance(init, ModelConfig):
        vocab = torch.tensor(sorted(data_tokens), dtype=torch.long)
        return init, initial_tensors(init, len(vocab), seed), vocab
    from runtime.checkpoint import Checkpoint
    from runtime.load import _Reader

    checkpoint = Checkpoint(init)
    config = checkpoint.config
    read = _Reader(checkpoint, torch.float32, torch.device("cpu"))
    embedding, unembedding = read("embedding.weight"), read("unembedding.weight")
    nonzero = (embedding != 0).any(-1) | (unembedding != 0).any(-1)
    used = torch.zeros(config.vocab_size, dtype=torch.bool)
    used[torch.tensor(sorted(data_tokens), dtype=torch.long)] = True
    vocab = torch.nonzero(nonzero | used).squeeze(-1)
    tensors = {}
    for name in master_names(config):
        if name.rsplit(".", 1)[-1] in EXPERT_WEIGHTS:
            tensors[name] = dequantize(
                read.packed(f"{name}.blocks"), read.packed(f"{name}.scales"), torch.float32
            )
        elif name in ("embedding.weight", "unembedding.weight"):
            tensors[name] = (embedding if name == "embedding.weight" else unembedding)[vocab]
        else:
            tensors[name] = read.raw(name).float()
    return config, tensors, vocab


def train(
    data: str | Path | Sequence[Conversation],
    out: str | Path,
    init: str | Path | ModelConfig,
    config: TrainConfig = TrainConfig(),
    *,
    resume: bool = True,
    log=None,
) -> Trainer:
    """Train on conversations (a JSONL path or a list), from a config (fresh weights) or a
    checkpoint folder (fine-tuning); writes `out`/checkpoint.pt as it goes and `out`/model
    (a standard checkpoint, original layout) at the end. Resumes from `out` if it can."""
    conversations = read_conversations(data) if isinstance(data, (str, Path)) else list(data)
    encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    sequences = [render_example(encoding, conversation) for conversation in conversations]
    tokens = {token for sequence, _ in sequences for token in sequence}
    model_config, tensors, vocab = starting_point(init, tokens, config.seed)
    trainer = Trainer(model_config, tensors, vocab, sequences, config, out)
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if resume and trainer.resume():
        log(f"resumed from {Path(out) / CHECKPOINT} at step {trainer.step}")
    targets = sum(len(e.targets) for e in trainer.examples)
    log(
        f"{len(sequences)} conversations, {sum(len(s) for s, _ in sequences)} tokens "
        f"({targets} trained), {len(vocab)} of {model_config.vocab_size} vocabulary rows"
    )
    trainer.run(log)
    trainer.export(Path(out) / "model")
    (Path(out) / "losses.json").write_text(json.dumps(trainer.losses))
    return trainer
