"""The python tool's latency: our stateful sandbox vs a fresh container per call.

Ours: cold start (PythonSession.start(): container and kernel ready) and the warm round
trip of a trivial execution. Reference (gpt-oss's docker backend): `docker run --rm IMAGE
python3 -c CODE` per call, here through the Docker SDK as the reference does, on the same
image so that only the approach differs. Goals: warm < 20 ms, cold < 3 s.

    python benchmarks/python_tool.py --warm 200 --cold 5
"""

from __future__ import annotations

import argparse
import statistics
import time

from tools.python import PythonSession
from tools.python.image import connect, ensure_image

CODE = "print(1 + 1)"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def quantile_ms(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))] * 1000


def ours(cold_runs: int, warm_runs: int) -> tuple[list[float], list[float]]:
    cold, warm = [], []
    for i in range(cold_runs):
        start = time.perf_counter()
        session = PythonSession().start()
        assert session.run(CODE) == "2\n"
        cold.append(time.perf_counter() - start)
        if i == cold_runs - 1:  # measure warm calls on the last session
            for _ in range(warm_runs):
                start = time.perf_counter()
                session.run(CODE)
                warm.append(time.perf_counter() - start)
        session.close()
    return cold, warm


def docker_run_per_call(image: str, runs: int) -> list[float]:
    client = connect()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        out = client.containers.run(image, ["python3", "-c", CODE], remove=True)
        assert out == b"2\n"
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm", type=int, default=200, help="warm round trips (ours)")
    parser.add_argument("--cold", type=int, default=5, help="cold starts, and reference calls")
    args = parser.parse_args()
    image = ensure_image(connect())
    cold, warm = ours(args.cold, args.warm)
    ref = docker_run_per_call(image, args.cold)
    ref_ms = median_ms(ref)
    rows = [
        ("first call (cold start + run)", median_ms(cold), ref_ms),
        ("each later call (median)", median_ms(warm), ref_ms),
        ("each later call (p90)", quantile_ms(warm, 0.9), quantile_ms(ref, 0.9)),
    ]
    print(f"image {image}; cold n={args.cold}, warm n={args.warm}, reference n={args.cold}")
    print(f"{'':32} {'ours ms':>10} {'docker run ms':>14} {'ratio':>8}")
    for label, mine, theirs in rows:
        print(f"{label:32} {mine:10.1f} {theirs:14.1f} {theirs / mine:7.1f}x")
    print(f"goals: warm < 20 ms: {median_ms(warm) < 20}; cold < 3000 ms: {median_ms(cold) < 3000}")


if __name__ == "__main__":
    main()
