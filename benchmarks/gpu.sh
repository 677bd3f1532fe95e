#!/usr/bin/env bash
# Batch-1 decode and prefill tok/s and peak GPU memory on one GPU: ours (bf16, compiled
# decode, static cache) vs transformers' GptOssForCausalLM (bf16, its own KV cache), on a
# random checkpoint with gpt-oss-20b's real shapes written on the GPU machine itself, next to
# the memory-bandwidth bound (~3.7 GB read per token; H200 ~4.8 TB/s -> ~1,290 tok/s).
#
#   bash benchmarks/gpu.sh [WORK_DIR]      (WORK_DIR default: /tmp/gpu-bench; results also
#                                           go to $OUT/gpu.json when $OUT is set)
#
# Budget: under 8 minutes in all on an H200 (checkpoint ~1-2 min, each side ~2-3 min).
# Environment: PRESET (default 20b), PROMPT (64), DECODE (128), BANDWIDTH_TB_S (4.8),
# SIDES ("ours transformers"), SIDE_TIMEOUT seconds per side (240); DEVICE=cpu PRESET=tiny
# checks the script itself on a machine without a GPU.
set -euo pipefail

cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK_DIR="${1:-/tmp/gpu-bench}"
PRESET="${PRESET:-20b}"
PROMPT="${PROMPT:-64}"
DECODE="${DECODE:-128}"
BANDWIDTH_TB_S="${BANDWIDTH_TB_S:-4.8}"
SIDES="${SIDES:-ours transformers}"
SIDE_TIMEOUT="${SIDE_TIMEOUT:-240}"
export DEVICE="${DEVICE:-cuda}"
CHECKPOINT="$WORK_DIR/$PRESET-hf"
RESULTS="$WORK_DIR/results.jsonl"
mkdir -p "$WORK_DIR"
: > "$RESULTS"

python - <<'EOF'
import os

import torch

if os.environ["DEVICE"] == "cpu":
    print("device: cpu (checking the script only; the figures mean nothing)")
elif not torch.cuda.is_available():
    raise SystemExit("gpu.sh: torch sees no CUDA device (torch %s); run it on the GPU machine" % torch.__version__)
else:
    print("device:", torch.cuda.get_device_name(), "| torch", torch.__version__)
EOF

if [[ ! -f "$CHECKPOINT/config.json" ]]; then
  echo "writing a random $PRESET checkpoint (HF layout) to $CHECKPOINT"
  start=$SECONDS
  python -c "from runtime.testing import write_random_checkpoint as w; w('$CHECKPOINT', '$PRESET', layout='hf')"
  echo "  written in $((SECONDS - start)) s"
fi

# One side per process, so each one's peak GPU memory is its own.
run_side() {
  local side="$1"
  echo "running $side"
  SIDE="$side" CHECKPOINT="$CHECKPOINT" PROMPT="$PROMPT" DECODE="$DECODE" \
    timeout "$SIDE_TIMEOUT" python - >> "$RESULTS" <<'EOF'
import json, os, time

import torch

side, path, device = os.environ["SIDE"], os.environ["CHECKPOINT"], os.environ["DEVICE"]
cuda = device == "cuda"
prompt, decode = int(os.environ["PROMPT"]), int(os.environ["DECODE"])
vocab = json.load(open(os.path.join(path, "config.json")))["vocab_size"]
ids = torch.randint(0, min(vocab, 199_000), (prompt,), generator=torch.Generator().manual_seed(0))


def timed(fn):
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if cuda:
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


start = time.perf_counter()
if side == "ours":
    from runtime import load_model

    model = load_model(path, device=device, dtype=torch.bfloat16, max_context=4096)
    load_s = time.perf_counter() - start
    # Two warm-up calls: the first compiles the decode step, the second records CUDA graphs.
    for _ in range(2):
        list(model.generate(ids.tolist(), max_tokens=8, temperature=0))
    model.reset()
    list(model.generate(ids.tolist(), max_tokens=decode, temperature=0))
    stats = model.last_stats
    prefill_tok_s, decode_tok_s = stats.prefill_tokens_per_second, stats.decode_tokens_per_second
else:
    from transformers import GptOssForCausalLM, Mxfp4Config

    # Loaded on the CPU, then moved: device_map would need `accelerate`.
    model = GptOssForCausalLM.from_pretrained(
        path, quantization_config=Mxfp4Config(dequantize=True), dtype=torch.bfloat16
    )
    model = model.to(device).eval()
    load_s = time.perf_counter() - start
    batch = ids.view(1, -1).to(device)

    def generate():
        with torch.no_grad():
            out, prefill_s = timed(lambda: model(batch, use_cache=True))
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)

            def steps():
                nonlocal cache, token
                for _ in range(decode - 1):
                    out = model(token, past_key_values=cache, use_cache=True)
                    cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)

            _, decode_s = timed(steps)
        return prefill_s, decode_s

    generate()  # warm up
    prefill_s, decode_s = generate()
    prefill_tok_s, decode_tok_s = prompt / prefill_s, (decode - 1) / decode_s

print(json.dumps({
    "side": side,
    "load_s": round(load_s, 1),
    "prefill_tok_s": round(prefill_tok_s, 1),
    "decode_tok_s": round(decode_tok_s, 1),
    "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else 0.0,
}))
EOF
}

for side in $SIDES; do
  run_side "$side" || echo "{\"side\": \"$side\", \"error\": \"exit $?\"}" >> "$RESULTS"
done

PRESET="$PRESET" BANDWIDTH_TB_S="$BANDWIDTH_TB_S" RESULTS="$RESULTS" PROMPT="$PROMPT" \
  DECODE="$DECODE" python - <<'EOF'
import json, os, sys

sys.path.insert(0, "benchmarks")
from runtime_vs_llamacpp import bytes_per_token

per_token = bytes_per_token(os.environ["PRESET"])
bound = float(os.environ["BANDWIDTH_TB_S"]) * 1e12 / per_token
rows = [json.loads(line) for line in open(os.environ["RESULTS"]) if line.strip()]
print(f"\n{os.environ['PRESET']}, batch 1, prompt {os.environ['PROMPT']}, "
      f"{os.environ['DECODE']} new tokens (greedy), bf16")
print(f"bound: {per_token / 1e9:.2f} GB per token at {os.environ['BANDWIDTH_TB_S']} TB/s "
      f"= {bound:,.0f} tok/s")
print(f"{'':14}{'decode tok/s':>14}{'prefill tok/s':>15}{'peak GPU GiB':>14}{'of bound':>10}")
for row in rows:
    if "error" in row:
        print(f"{row['side']:14}failed ({row['error']})")
        continue
    print(f"{row['side']:14}{row['decode_tok_s']:14.1f}{row['prefill_tok_s']:15.1f}"
          f"{row['peak_gpu_gib']:14.2f}{row['decode_tok_s'] / bound:10.0%}")
summary = {"preset": os.environ["PRESET"], "bound_tok_s": bound, "sides": rows}
if os.environ.get("OUT"):
    with open(os.path.join(os.environ["OUT"], "gpu.json"), "w") as out:
        json.dump(summary, out, indent=2)
EOF
