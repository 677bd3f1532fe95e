"""Decode and prefill tok/s, peak RSS and share of the bandwidth bound: ours vs llama.cpp.

Both sides run the same random checkpoint (written by `runtime.testing` in the Hugging Face
layout, converted to GGUF by llama.cpp's own converter, MXFP4 experts kept) on the same
prompt, greedy, with the same thread count, each in its own process, in one run; the
machine's read bandwidth is measured in the same run.

    python benchmarks/runtime_vs_llamacpp.py CACHE_DIR --preset 20b-4experts

Setup, done by the script when missing (nothing here is a dependency of the project):
- llama-cpp-python goes into its own venv (`--venv`, default /work/venvs/llamacpp) from the
  prebuilt wheel (`--wheel`, see ../shared/wheels/README.md): `python -m venv VENV &&
  VENV/bin/pip install WHEEL`.
- llama.cpp's converter comes from the same release's source archive:
  `pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36` (into CACHE_DIR); it
  runs with this Python (it needs torch, transformers and tokenizers).
- The tokenizer.json the converter needs is built from `--tiktoken` (o200k_base) plus the
  harmony special tokens (199998-201087) with transformers' TikTokenConverter.

`20b-4experts` has gpt-oss-20b's per-token shapes (and bytes read per token) with 4 experts
per layer, all active; the full `20b` preset needs ~20 GiB for llama.cpp alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LLAMA_VERSION = "0.3.36"


def shared(relative: str) -> Path:
    """The project's shared folder beside the checkout (or beside a worktree's parent)."""
    candidates = [folder / "shared" / relative for folder in ROOT.parents]
    return next((path for path in candidates if path.exists()), candidates[0])


DEFAULT_WHEEL = shared("wheels/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl")
DEFAULT_TIKTOKEN = shared("tokenizers/o200k_base.tiktoken")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def prompt_ids(length: int) -> list[int]:
    """Ordinary text tokens (no special ones), the same on both sides. Each side warms up
    on the whole prompt: it touches every expert the measured run reads, so no weights come
    from disk while timing (the two 20b files together outgrow this machine's page cache)."""
    import random

    rng = random.Random(0)
    return [rng.randrange(1000, 199_000) for _ in range(length)]


def medians(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


# ---- the two sides, each run in its own process ------------------------------------------


def side_ours(args) -> dict:
    # runtime first: it sets how torch's OpenMP workers wait, before torch is imported
    from runtime import load_model  # noqa: I001

    import torch

    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    ids = prompt_ids(args.prompt)
    list(model.generate(ids, max_tokens=2, temperature=0))  # warm up: see `prompt_ids`
    runs = []
    for _ in range(args.repeats):
        model.reset()
        out = list(model.generate(ids, max_tokens=args.decode, temperature=0))
        stats = model.last_stats
        runs.append(
            {
                "prefill_tok_s": stats.prefill_tokens_per_second,
                "decode_tok_s": stats.decode_tokens_per_second,
            }
        )
    return {**medians(runs), "tokens": out, "peak_rss_gib": peak_rss_gib()}


def side_llamacpp(args) -> dict:
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    context = args.prompt + args.decode + 16
    llm = Llama(
        model_path=str(args.gguf),
        n_ctx=context,
        n_batch=args.prompt,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    ids = prompt_ids(args.prompt)

    def greedy() -> int:  # the last position's logits (llm.scores stays empty without
        # logits_all, which would compute every prompt position's logits)
        logits = llama_cpp.llama_get_logits(llm.ctx)
        return int(np.argmax(np.ctypeslib.as_array(logits, shape=(llm.n_vocab(),))))

    llm.eval(ids)  # warm up: see `prompt_ids`
    runs = []
    for _ in range(args.repeats):
        llm.reset()
        start = time.perf_counter()
        llm.eval(ids)
        prefill = time.perf_counter() - start
        out = [greedy()]
        start = time.perf_counter()
        for _ in range(args.decode - 1):
            llm.eval([out[-1]])
            out.append(greedy())
        decode = time.perf_counter() - start
        runs.append(
            {"prefill_tok_s": args.prompt / prefill, "decode_tok_s": (args.decode - 1) / decode}
        )
    return {**medians(runs), "tokens": out, "peak_rss_gib": peak_rss_gib()}


def side_bandwidth(args) -> dict:
    """Read bandwidth with the benchmark's threads: summing a 1 GiB array, best of 5."""
    import torch

    torch.set_num_threads(args.threads)
    data = torch.ones(2**28)  # 1 GiB of fp32, touched once before timing
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return {"read_gb_s": data.numel() * 4 / best / 1e9}


SIDES = {"ours": side_ours, "llamacpp": side_llamacpp, "bandwidth": side_bandwidth}


# ---- setup: checkpoint, tokenizer, GGUF, venv ----------------------------------------------


def bytes_per_token(preset: str) -> int:
    """Weights one decode step reads: the active experts (MXFP4), attention and router of
    every layer, one embedding row and the whole unembedding (bf16)."""
    from runtime.config import PRESETS, bits_per_param_mxfp4

    c = PRESETS[preset]
    h, i = c.hidden_size, c.intermediate_size
    expert = (2 * i * h + h * i) * bits_per_param_mxfp4() / 8 + (2 * i + h) * 2
    attention = (c.qkv_dim * h + c.qkv_dim + h * c.num_attention_heads * c.head_dim + h) * 2
    router = (c.num_experts * h + c.num_experts) * 2
    layer = c.experts_per_token * expert + attention + router
    return int(c.num_hidden_layers * layer + (c.vocab_size * h + h) * 2)


def write_tokenizer(folder: Path, tiktoken_file: Path) -> None:
    """tokenizer.json for llama.cpp's converter: o200k_base and the harmony special tokens."""
    import tiktoken.load
    import tiktoken_ext.openai_public as openai_public
    from transformers.convert_slow_tokenizer import TikTokenConverter

    # The encoding's definition, its token file read from disk instead of downloaded.
    openai_public.load_tiktoken_bpe = lambda _url, expected_hash=None: (
        tiktoken.load.load_tiktoken_bpe(str(tiktoken_file), expected_hash)
    )
    harmony = openai_public.o200k_harmony()
    # One name per id, in id order (the added tokens are numbered in order after the BPE
    # vocabulary); 200018 has two names, <|endofprompt|> first.
    by_id: dict[int, str] = {}
    for name, token in harmony["special_tokens"].items():
        by_id.setdefault(token, name)
    special = [by_id[token] for token in sorted(by_id)]
    converter = TikTokenConverter(
        vocab_file=str(tiktoken_file), pattern=harmony["pat_str"], extra_special_tokens=special
    )
    converter.converted().save(str(folder / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 131072}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def llama_source(cache: Path) -> Path:
    folder = cache / f"llama_cpp_python-{LLAMA_VERSION}"
    if not folder.exists():
        package = f"llama-cpp-python=={LLAMA_VERSION}"
        download = ["pip", "download", "--no-deps", "--no-binary", ":all:", package]
        subprocess.run([sys.executable, "-m", *download, "-d", str(cache)], check=True)
        with tarfile.open(cache / f"llama_cpp_python-{LLAMA_VERSION}.tar.gz") as archive:
            archive.extractall(cache, filter="data")
    return folder / "vendor" / "llama.cpp"


def prepare(cache: Path, preset: str, tiktoken_file: Path) -> tuple[Path, Path]:
    from runtime.testing import write_random_checkpoint

    checkpoint = cache / f"{preset}-hf"
    if not (checkpoint / "config.json").exists():
        print(f"writing a random {preset} checkpoint to {checkpoint}", flush=True)
        write_random_checkpoint(checkpoint, preset, seed=0, layout="hf")
    if not (checkpoint / "tokenizer.json").exists():
        write_tokenizer(checkpoint, tiktoken_file)
    gguf = cache / f"{preset}.gguf"
    if not gguf.exists():
        print(f"converting to {gguf} with llama.cpp's convert_hf_to_gguf.py", flush=True)
        source = llama_source(cache)
        convert = [str(source / "convert_hf_to_gguf.py"), str(checkpoint), "--outfile", str(gguf)]
        subprocess.run(
            [sys.executable, *convert, "--outtype", "bf16"],
            check=True,
            env={**os.environ, "PYTHONPATH": str(source / "gguf-py")},
        )
    return checkpoint, gguf


def llama_python(venv: Path, wheel: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} with llama-cpp-python from {wheel}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", str(wheel)], check=True)
    return python


def run_side(python: Path, side: str, args, **paths: Path) -> dict:
    command = [str(python), __file__, "--side", side, str(args.cache), "--preset", args.preset]
    for option in ("threads", "prompt", "decode", "repeats"):
        command += [f"--{option}", str(getattr(args, option))]
    for name, path in paths.items():
        command += [f"--{name}", str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"the {side} side failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path, help="folder for the checkpoint, GGUF and sources")
    parser.add_argument("--preset", default="20b-4experts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--decode", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=Path("/work/venvs/llamacpp"))
    parser.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL)
    parser.add_argument("--tiktoken", type=Path, default=DEFAULT_TIKTOKEN)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--gguf", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(SIDES[args.side](args)))
        return

    args.cache.mkdir(parents=True, exist_ok=True)
    checkpoint, gguf = prepare(args.cache, args.preset, args.tiktoken)
    llama = llama_python(args.venv, args.wheel)
    # Rounds alternate the sides, and which side goes first, so both meet the same load on a
    # shared machine; each side process measures `repeats` times after a warm-up.
    rounds = []
    for number in range(args.rounds):
        read = run_side(Path(sys.executable), "bandwidth", args)["read_gb_s"]
        if number % 2:
            theirs = run_side(llama, "llamacpp", args, gguf=gguf)
            ours = run_side(Path(sys.executable), "ours", args, checkpoint=checkpoint)
        else:
            ours = run_side(Path(sys.executable), "ours", args, checkpoint=checkpoint)
            theirs = run_side(llama, "llamacpp", args, gguf=gguf)
        rounds.append({"read": read, "ours": ours, "llama.cpp": theirs})
        print(
            f"round {number + 1}: read {read:.1f} GB/s; decode ours {ours['decode_tok_s']:.2f}, "
            f"llama.cpp {theirs['decode_tok_s']:.2f} tok/s; prefill ours "
            f"{ours['prefill_tok_s']:.2f}, llama.cpp {theirs['prefill_tok_s']:.2f} tok/s",
            flush=True,
        )
    read = statistics.median(r["read"] for r in rounds)
    per_token = bytes_per_token(args.preset)
    bound = read * 1e9 / per_token

    def median(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in rounds)

    def ratio(key: str) -> float:
        return statistics.median(r["ours"][key] / r["llama.cpp"][key] for r in rounds)

    print(
        f"\n{args.preset}: prompt {args.prompt} tokens, {args.decode} new (greedy), "
        f"{args.threads} threads; medians of {args.rounds} rounds x {args.repeats} repeats"
    )
    print(
        f"read bandwidth {read:.1f} GB/s, {per_token / 1e9:.2f} GB read per token: "
        f"bound {bound:.2f} tok/s"
    )
    print(f"{'':12}{'decode tok/s':>14}{'prefill tok/s':>15}{'peak RSS GiB':>14}{'of bound':>10}")
    for side in ("ours", "llama.cpp"):
        decode = median(side, "decode_tok_s")
        print(
            f"{side:12}{decode:14.2f}{median(side, 'prefill_tok_s'):15.2f}"
            f"{max(r[side]['peak_rss_gib'] for r in rounds):14.2f}{decode / bound:10.0%}"
        )
    same = all(r["ours"]["tokens"] == r["llama.cpp"]["tokens"] for r in rounds)
    print(
        f"ours / llama.cpp (median of per-round ratios): decode {ratio('decode_tok_s'):.2f}x, "
        f"prefill {ratio('prefill_tok_s'):.2f}x; same greedy tokens: {same}"
    )


if __name__ == "__main__":
    main()
