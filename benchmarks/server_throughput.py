"""Aggregate decode throughput of `oss-agent serve` with 1, 4 and 16 concurrent requests.

The same workload (random prompts of one length, greedy, a fixed number of new tokens each)
is sent to the real server (`oss-agent serve`, a subprocess) over /v1/completions: first one
request at a time (sequential serving), then 4 and 16 at a time; each level gets fresh
prompts, so none finds its prefix cached by an earlier one. Throughput is generated tokens
over wall time, prefill included. The checkpoint is random, written once to CACHE_DIR.

    python benchmarks/server_throughput.py /path/to/cache --preset mini
    python benchmarks/server_throughput.py /path/to/cache --preset 20b-4experts --decode 16
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    checkpoint: Path, port: int, max_batch: int, dtype: str, threads: int | None
) -> subprocess.Popen:
    command = [
        sys.executable,
        "-c",
        "from agent.cli import main; main()",
        "serve",
        "--model",
        str(checkpoint),
        "--port",
        str(port),
        "--max-batch",
        str(max_batch),
        "--dtype",
        dtype,
    ]
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def wait_healthy(url: str, server: subprocess.Popen, seconds: float = 1800) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the server did not become healthy")


def run(url: str, prompts: list[list[int]], decode: int, concurrency: int) -> dict:
    """Send every prompt, `concurrency` at a time; tokens generated over wall time."""
    pending = list(enumerate(prompts))
    lock = threading.Lock()
    generated = [0] * len(prompts)

    def worker() -> None:
        with httpx.Client(timeout=None) as client:
            while True:
                with lock:
                    if not pending:
                        return
                    index, prompt = pending.pop(0)
                body = {"prompt": prompt, "max_tokens": decode, "temperature": 0}
                reply = client.post(url + "/v1/completions", json=body)
                reply.raise_for_status()
                generated[index] = len(reply.json()["choices"][0]["token_ids"])

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "requests": len(prompts),
        "generated": sum(generated),
        "seconds": round(seconds, 2),
        "tok_s": round(sum(generated) / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--prompt", type=int, default=32, help="prompt tokens per request")
    parser.add_argument("--decode", type=int, default=32, help="new tokens per request")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--threads", type=int, help="the server's OMP_NUM_THREADS")
    args = parser.parse_args()

    from runtime.config import PRESETS
    from runtime.testing import write_random_checkpoint

    checkpoint = args.cache_dir / f"random-{args.preset}"
    if not (checkpoint / "config.json").exists():
        write_random_checkpoint(checkpoint, args.preset, seed=0)
    vocab = PRESETS[args.preset].vocab_size
    rng = random.Random(0)
    levels = [int(c) for c in args.concurrency.split(",")]

    def requests() -> list[list[int]]:
        # Fresh prompts per level, so no level finds its prompts in the server's caches.
        return [[rng.randrange(vocab) for _ in range(args.prompt)] for _ in range(args.requests)]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(checkpoint, port, max(levels), args.dtype, args.threads)
    try:
        wait_healthy(url, server)
        run(url, requests()[:1], 2, 1)  # warm up
        base = None
        for level in levels:
            row = run(url, requests(), args.decode, level)
            base = base or row["tok_s"]
            row["speedup"] = round(row["tok_s"] / base, 2)
            print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    threads = args.threads or os.cpu_count()
    print(
        f"# {args.preset} {args.dtype}: {args.requests} requests, {args.prompt} prompt + "
        f"{args.decode} new tokens each; server threads {threads}"
    )


if __name__ == "__main__":
    main()
