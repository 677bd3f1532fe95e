"""The C++ CPU kernels against PyTorch, and how they are built (once, keyed, after checks)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from runtime_helpers import needs_kernel, prompt

from runtime import kernels, load_model
from runtime.kv_cache import LayerCache
from runtime.model import rotate
from runtime.moe import swiglu
from runtime.mxfp4 import dequantize


@needs_kernel
@pytest.mark.parametrize("tokens", [1, 2, 5])
@pytest.mark.parametrize("rows, cols", [(1, 8), (37, 96), (130, 203)])
@pytest.mark.parametrize("bias_dtype", [torch.bfloat16, torch.float32, torch.float16])
def test_bf16_linear_accumulates_fp32_activations_in_fp32(tokens, rows, cols, bias_dtype):
    """Biases are read in place when bf16 or fp32, converted otherwise."""
    generator = torch.Generator().manual_seed(rows * cols + tokens)
    weight = torch.randn(rows, cols, generator=generator).bfloat16()
    bias = torch.randn(rows, generator=generator).to(bias_dtype)
    x = torch.randn(tokens, cols, generator=generator)
    out = kernels.linear_bf16(x, weight, bias)
    assert out.dtype == torch.float32
    expected = F.linear(x.double(), weight.double(), bias.double()).float()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kernels.linear_bf16(x, weight, None) + bias.float(), out)


@needs_kernel
def test_rms_norm_and_rope_match_the_eager_ops():
    """The fused calls compute what the model's PyTorch path does, rope_ on q and k heads
    only (v, the heads after them, untouched)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 40, generator=generator) * 5
    scale = torch.randn(40, generator=generator)
    expected = scale * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))
    torch.testing.assert_close(kernels.rms_norm(x, scale, 1e-5), expected)

    tokens, heads, d = 3, 5, 8
    qkv = torch.randn(tokens, (heads + 1) * d, generator=generator)
    angles = torch.randn(tokens, 1, d // 2, generator=generator)
    cos, sin = angles.cos(), angles.sin()
    expected = qkv.clone()
    expected[:, : heads * d] = rotate(qkv[:, : heads * d].view(tokens, heads, d), cos, sin).view(
        tokens, -1
    )
    kernels.rope_(qkv, cos, sin, heads, d)
    torch.testing.assert_close(qkv, expected)


def reference_attention(q, keys, values, key_pos, positions, sinks, window):
    heads, kv_heads, d = q.shape[1], keys.shape[1], q.shape[2]
    group = heads // kv_heads
    k = keys.float().repeat_interleave(group, dim=1)
    v = values.float().repeat_interleave(group, dim=1)
    visible = (key_pos >= 0) & (key_pos <= positions[:, None])
    if window:
        visible &= key_pos > positions[:, None] - window
    scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(d)
    scores = scores.masked_fill(~visible, float("-inf"))
    sink = sinks.view(heads, 1, 1).expand(heads, len(positions), 1)
    probs = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]
    return torch.einsum("hts,shd->thd", probs, v).reshape(len(positions), heads * d)


@needs_kernel
@pytest.mark.parametrize("window", [None, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_over_cache_cells_matches_softmax_with_sinks(window, dtype):
    """Empty cells (-1), cells past the query and outside the window are not attended; sinks
    as stored in the cache's dtype."""
    generator = torch.Generator().manual_seed(0)
    tokens, heads, kv_heads, d, cells = 5, 8, 2, 16, 20
    q = torch.randn(tokens, heads, d, generator=generator)
    keys = torch.randn(cells, kv_heads, d, generator=generator).to(dtype)
    values = torch.randn(cells, kv_heads, d, generator=generator).to(dtype)
    key_pos = torch.arange(cells)
    key_pos[3] = -1
    positions = torch.arange(cells - tokens, cells)
    sinks = torch.randn(heads, generator=generator).to(dtype)
    out = kernels.attention(q, keys, values, key_pos, positions, sinks, window)
    expected = reference_attention(q, keys, values, key_pos, positions, sinks.float(), window)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_decode_attention_over_a_long_cache_matches_with_kv_heads_split_over_threads(threads):
    """Past ~4M multiply-adds one query's KV heads are split between threads; each part
    reads the cache slot by slot."""
    generator = torch.Generator().manual_seed(threads)
    heads, kv_heads, d, cells = 16, 4, 64, 4200
    q = torch.randn(1, heads, d, generator=generator)
    keys = torch.randn(cells, kv_heads, d, generator=generator).bfloat16()
    values = torch.randn(cells, kv_heads, d, generator=generator).bfloat16()
    key_pos = torch.arange(cells)
    key_pos[cells - 1] = -1  # the newest cell is still empty
    positions = torch.tensor([cells - 2])
    sinks = torch.randn(heads, generator=generator)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = kernels.attention(q, keys, values, key_pos, positions, sinks, None)
    finally:
        torch.set_num_threads(before)
    expected = reference_attention(q, keys, values, key_pos, positions, sinks, None)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@needs_kernel
def test_attention_weights_keep_float_precision_across_the_whole_exp_range():
    """Each value row is one-hot, so the output is the softmax weights themselves: scores
    from 0 down to -190 (past fp32's smallest normal) against a sink, 12 heads (8 take the
    vector exp, 4 the scalar one). Weights under ~1e-38 may be 0."""
    heads, kv_heads, d = 12, 3, 64
    keys = torch.zeros(d, kv_heads, d)
    keys[:, :, 0] = torch.arange(d, dtype=torch.float32)[:, None]
    values = torch.eye(d)[:, None, :].expand(d, kv_heads, d).contiguous()
    q = torch.zeros(1, heads, d)
    q[0, :, 0] = -math.sqrt(d) * torch.linspace(0.5, 3.0, heads)  # score of key s: -s x slope
    sinks = torch.linspace(-2.0, 2.0, heads)
    key_pos, positions = torch.arange(d), torch.tensor([d - 1])
    out = kernels.attention(q, keys, values, key_pos, positions, sinks, None)
    expected = reference_attention(q, keys, values, key_pos, positions, sinks, None)
    assert expected.min() == 0 and (expected[expected > 0].min() < 1e-38)  # the range is covered
    torch.testing.assert_close(out, expected, rtol=2e-6, atol=2e-38)


def random_experts(experts: int, hidden: int, intermediate: int, generator):
    def packed(rows: int, cols: int):
        shape = (experts, rows, cols // 32)
        blocks = torch.randint(0, 256, (*shape, 16), dtype=torch.uint8, generator=generator)
        return blocks, torch.randint(118, 128, shape, dtype=torch.uint8, generator=generator)

    mlp1_blocks, mlp1_scales = packed(2 * intermediate, hidden)
    mlp2_blocks, mlp2_scales = packed(hidden, intermediate)
    return {
        "mlp1_blocks": mlp1_blocks,
        "mlp1_scales": mlp1_scales,
        "mlp1_bias": torch.randn(experts, 2 * intermediate, generator=generator),
        "mlp2_blocks": mlp2_blocks,
        "mlp2_scales": mlp2_scales,
        "mlp2_bias": torch.randn(experts, hidden, generator=generator),
    }


def reference_moe(x, experts, weights, packed, limit):
    out = torch.zeros_like(x)
    for t in range(len(x)):
        for slot, e in enumerate(experts[t].tolist()):
            w1 = dequantize(packed["mlp1_blocks"][e], packed["mlp1_scales"][e], torch.float32)
            w2 = dequantize(packed["mlp2_blocks"][e], packed["mlp2_scales"][e], torch.float32)
            h = swiglu(F.linear(x[t], w1, packed["mlp1_bias"][e]), limit)
            out[t] += weights[t, slot] * F.linear(h, w2, packed["mlp2_bias"][e])
    return out


@needs_kernel
@pytest.mark.parametrize("tokens", [1, 11])
def test_moe_layer_kernel_matches_expert_by_expert(tokens):
    """fp32 activations: float rounding only; int8 activations per block of 32: ~1%."""
    generator = torch.Generator().manual_seed(tokens)
    packed = random_experts(8, 96, 64, generator)
    x = torch.randn(tokens, 96, generator=generator) * 3
    experts = torch.stack([torch.randperm(8, generator=generator)[:4] for _ in range(tokens)])
    weights = torch.softmax(torch.randn(tokens, 4, generator=generator), dim=-1)
    expected = reference_moe(x, experts, weights, packed, limit=7.0)
    exact = kernels.moe_experts(x, experts, weights, packed, 7.0, exact=True)
    torch.testing.assert_close(exact, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())
    quantized = kernels.moe_experts(x, experts, weights, packed, 7.0, exact=False)
    assert (quantized - expected).abs().max() < 0.03 * expected.abs().max()
    bf16_biases = {name: t.bfloat16() if name.endswith("bias") else t for name, t in packed.items()}
    rounded = {name: t.float() if name.endswith("bias") else t for name, t in bf16_biases.items()}
    torch.testing.assert_close(
        kernels.moe_experts(x, experts, weights, bf16_biases, 7.0, exact=True),
        kernels.moe_experts(x, experts, weights, rounded, 7.0, exact=True),
    )


@needs_kernel
def test_moe_swiglu_matches_on_both_sides_of_the_sigmoid_and_past_the_clamps():
    """Pre-activations from about -100 to 100: the gate's sigmoid is taken from exp(-|z|)
    on either side of 0, gates above the limit and linears outside +-limit are clamped."""
    generator = torch.Generator().manual_seed(5)
    packed = random_experts(4, 96, 64, generator)
    x = torch.randn(3, 96, generator=generator) * 40
    experts = torch.tensor([[0, 1], [2, 3], [1, 2]])
    weights = torch.softmax(torch.randn(3, 2, generator=generator), dim=-1)
    h = [
        F.linear(
            x[t], dequantize(packed["mlp1_blocks"][e], packed["mlp1_scales"][e], torch.float32)
        )
        for t, e in [(0, 0), (1, 2)]
    ]
    assert min(float(r.min()) for r in h) < -50 and max(float(r.max()) for r in h) > 50
    expected = reference_moe(x, experts, weights, packed, limit=7.0)
    exact = kernels.moe_experts(x, experts, weights, packed, 7.0, exact=True)
    torch.testing.assert_close(exact, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def int8_per_block(x: torch.Tensor) -> torch.Tensor:
    """x rounded the way the quantized kernel sees it: int8 per block of 32, absmax / 127."""
    blocks = x.view(*x.shape[:-1], -1, 32)
    amax = blocks.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, 127 / amax, torch.zeros_like(amax))
    return (torch.round(blocks * inv) * (amax / 127)).view(x.shape)


@needs_kernel
@pytest.mark.parametrize("hidden", [96, 128, 608])
def test_quantized_moe_layer_is_exact_on_int8_activations(hidden):
    """The int8 path's only approximation is rounding the activations (odd and even block
    counts: blocks are taken in pairs, and 8 at a time where there are enough: 608 is 19
    blocks, two runs of 8, one pair and one block)."""
    generator = torch.Generator().manual_seed(hidden)
    tokens, intermediate = 6, 96
    packed = random_experts(8, hidden, intermediate, generator)
    x = torch.randn(tokens, hidden, generator=generator) * 3
    experts = torch.stack([torch.randperm(8, generator=generator)[:4] for _ in range(tokens)])
    weights = torch.softmax(torch.randn(tokens, 4, generator=generator), dim=-1)
    expected = torch.zeros_like(x)
    for t in range(tokens):
        for slot, e in enumerate(experts[t].tolist()):
            w1 = dequantize(packed["mlp1_blocks"][e], packed["mlp1_scales"][e], torch.float32)
            w2 = dequantize(packed["mlp2_blocks"][e], packed["mlp2_scales"][e], torch.float32)
            h = swiglu(F.linear(int8_per_block(x[t]), w1, packed["mlp1_bias"][e]), 7.0)
            y = F.linear(int8_per_block(h), w2, packed["mlp2_bias"][e])
            expected[t] += weights[t, slot] * y
    quantized = kernels.moe_experts(x, experts, weights, packed, 7.0, exact=False)
    torch.testing.assert_close(quantized, expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


@needs_kernel
def test_moe_layer_kernel_rejects_an_expert_index_out_of_range():
    packed = random_experts(2, 32, 32, torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="expert index out of range"):
        kernels.moe_experts(
            torch.zeros(1, 32), torch.tensor([[2]]), torch.ones(1, 1), packed, 7.0, True
        )


def cached_steps(model, tokens: list[int], decode: int) -> torch.Tensor:
    """The logits of a chunked prefill and of each greedy decode step after it."""
    with torch.no_grad():
        model._ensure_caches(len(tokens) + decode)
        logits = [model._prefill(tokens)]
        for _ in range(decode):
            logits.append(model._decode_next(int(logits[-1].argmax())))
    return torch.stack(logits)


@needs_kernel
def test_cached_steps_run_fused_blocks_and_one_call_per_decode_step_like_the_pytorch_path(
    tiny_original, monkeypatch
):
    """Chunked prefill runs each block half as one kernel call (a ring layer's chunk of
    several tokens is the one case left to the separate calls), each decode step past the
    sliding window is a single call for all blocks: the fp32 logits of every step are the
    PyTorch path's."""
    model = load_model(tiny_original, dtype=torch.float32)
    model.prefill_chunk = 7
    calls = Counter()
    for name in ("attention_block", "moe_block", "decode_blocks"):
        real = getattr(kernels, name)
        monkeypatch.setattr(
            kernels, name, lambda *a, real=real, name=name: calls.update([name]) or real(*a)
        )
    tokens, decode = prompt(20, seed=3), 8  # window 16: positions 20-27 wrap the rings
    fused = cached_steps(model, tokens, decode)
    layers = model.config.num_hidden_layers
    sliding = sum(model.config.is_sliding(n) for n in range(layers))
    chunks = math.ceil(len(tokens) / 7)
    assert calls == {
        "attention_block": (layers - sliding) * chunks,
        "moe_block": layers * chunks,
        "decode_blocks": decode,
    }
    monkeypatch.setattr(kernels, "available", lambda: False)
    model.reset()
    reference = cached_steps(model, tokens, decode)
    torch.testing.assert_close(fused, reference, rtol=1e-4, atol=1e-4 * reference.abs().max())


@needs_kernel
def test_new_keys_and_values_land_in_their_slots_rounded_like_tensor_to(tiny_original):
    """The fused attention half stores keys and values itself: a bf16 cache holds exactly the
    fp32 values rounded as Tensor.to rounds them, a ring wraps positions onto its slots, and a
    position past a full cache's end is refused by name."""
    model = load_model(tiny_original, dtype=torch.float32)
    config, attn = model.config, model.transformer.blocks[0].attn
    x = torch.randn(3, config.hidden_size, generator=torch.Generator().manual_seed(0))

    def store(dtype, positions, ring=False, slots=8):
        cache = LayerCache(
            slots, config.num_key_value_heads, config.head_dim, dtype, torch.device("cpu"), ring
        )
        positions = torch.tensor(positions)
        rope = model.transformer.rotary(positions, torch.float32)
        cached = (cache.k, cache.v, cache.pos, cache.ring)
        kernels.attention_block(x[: len(positions)], attn.kernel_weights, rope, cached, positions)
        return cache

    full, rounded = store(torch.float32, [0, 1, 2]), store(torch.bfloat16, [0, 1, 2])
    assert full.pos.tolist() == [0, 1, 2, -1, -1, -1, -1, -1]
    assert torch.equal(rounded.pos, full.pos)
    assert full.k[:3].abs().sum() > 0 and not full.k[3:].any()
    assert torch.equal(rounded.k, full.k.to(torch.bfloat16))
    assert torch.equal(rounded.v, full.v.to(torch.bfloat16))
    ring = store(torch.float32, [9], ring=True)
    assert ring.pos.tolist() == [-1, 9, -1, -1, -1, -1, -1, -1]
    assert ring.k[1].any() and not ring.k[0].any() and not ring.k[2:].any()
    with pytest.raises(RuntimeError, match="position 8 does not fit a cache of 8 slots"):
        store(torch.float32, [8])


def spin_count_after(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code += "; import os; print(os.environ.get('GOMP_SPINCOUNT'))"
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_runtime_before_torch_shortens_the_openmp_spin_unless_the_user_chose():
    """libgomp reads its wait policy when torch loads it: runtime sets a short spin before
    that, and leaves alone a user's own setting (or a torch already loaded)."""
    assert spin_count_after("import runtime") == "1000"
    assert spin_count_after("import runtime", OMP_WAIT_POLICY="active") == "None"
    assert spin_count_after("import runtime", GOMP_SPINCOUNT="5") == "5"
    assert spin_count_after("import torch, runtime") == "None"


@pytest.fixture
def path_without_ninja(tmp_path) -> str:
    """A PATH with this Python and the C++ compiler, and no ninja."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler:
        (bin_dir / Path(compiler).name).symlink_to(compiler)
    return str(bin_dir)


def test_build_key_covers_what_changes_the_binary_and_not_ninja(
    monkeypatch, tmp_path, path_without_ninja
):
    key = kernels.build_key()
    monkeypatch.setenv("PATH", path_without_ninja)
    assert kernels.build_key() == key
    monkeypatch.setattr(kernels, "CFLAGS", (*kernels.CFLAGS, "-DCHANGED"))
    assert kernels.build_key() != key
    monkeypatch.undo()
    source = tmp_path / "mxfp4_cpu.cpp"
    source.write_bytes(kernels.SOURCES[0].read_bytes() + b"\n// changed\n")
    monkeypatch.setattr(kernels, "SOURCES", (source, *kernels.SOURCES[1:]))
    assert kernels.build_key() != key
    monkeypatch.setattr(kernels.torch, "__version__", "0.0.0")
    assert kernels.build_key() != key


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_kernel
def test_a_finished_build_is_imported_whichever_ninja_is_found(path_without_ninja):
    """Another ninja (or none) on the PATH must not rebuild: the cached binary is used."""
    base = kernels.build_dir().parent
    code = "from runtime import kernels; assert kernels.available(); print(kernels.build_dir())"
    start = time.perf_counter()
    result = run_python(code, PATH=path_without_ninja, OSS_AGENT_KERNEL_DIR=str(base))
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == kernels.build_dir()
    assert "compiling" not in result.stderr
    assert time.perf_counter() - start < 60


def test_a_wrong_checkpoint_path_fails_before_any_kernel_build(tmp_path):
    kernel_dir = tmp_path / "kernels"
    code = (
        "from runtime import load_model, CheckpointError\n"
        "try:\n"
        f"    load_model({str(tmp_path / 'nonexistent')!r})\n"
        "except CheckpointError as error:\n"
        "    print('refused:', error)\n"
    )
    result = run_python(code, OSS_AGENT_KERNEL_DIR=str(kernel_dir))
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout and "nonexistent" in result.stdout
    assert "compiling" not in result.stderr
    assert not kernel_dir.exists()


def test_a_build_killed_midway_does_not_block_later_builds(tmp_path):
    """A build killed midway (Ctrl-C, a timeout) leaves torch's `lock` file behind; the next
    build must not wait on it forever. Ours is an flock, which dies with its holder."""
    (tmp_path / "lock").write_text("")  # what a killed torch build leaves
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from runtime import kernels\n"
            "with kernels._build_lock(Path(sys.argv[1])):\n"
            "    print('holding', flush=True); time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert not (tmp_path / "lock").exists()  # stale: removed by whoever holds the flock
        waiter = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from runtime import kernels\n"
                "with kernels._build_lock(Path(sys.argv[1])): print('built')\n",
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        assert waiter.poll() is None  # one build at a time
        (tmp_path / "lock").write_text("")  # the holder's torch build, killed with it
        holder.kill()
        assert waiter.communicate(timeout=60)[0].strip() == "built"
        assert not (tmp_path / "lock").exists()
    finally:
        holder.kill()
        holder.wait()
