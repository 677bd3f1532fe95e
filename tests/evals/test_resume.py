"""A run killed with SIGKILL mid-way, then resumed, ends with the same metrics as a run
that was never interrupted, and with no sample recorded twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from eval_server import benchmark_answers, scripted_model

from evals.data import SAMPLES
from evals.store import RunSettings, RunStore, key_of

ROOT = Path(__file__).parents[2]
BENCHMARKS = ["gpqa", "aime25", str(SAMPLES / "example.jsonl")]
TOTAL = (4 + 3 + 4) * 2 * 2  # items x efforts x repeats


def command(url: str, out: Path) -> list[str]:
    return [
        sys.executable, "-c", "from agent.cli import main; main()",
        "eval", "run", "--benchmark", ",".join(BENCHMARKS), "--effort", "low,high",
        "--repeats", "2", "--sample", "--model", url, "--out", str(out), "--concurrency", "4",
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def comparable(report: dict) -> list[dict]:
    """The report's rows without wall-clock figures."""
    drop = {"latency_p50", "latency_p90"}
    return [{k: v for k, v in row.items() if k not in drop} for row in report["rows"]]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, model_server) -> None:
    tasks = benchmark_answers(["gpqa", "aime25", str(SAMPLES / "example.jsonl")], repeats=2)
    server = model_server(scripted_model(tasks), delay=0.03)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    results = killed / "results.jsonl"

    process = subprocess.Popen(
        command(server.url, killed), cwd=ROOT, env=env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 10:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    before = results.read_text().count("\n")
    assert 10 <= before < TOTAL, "the run must be killed part way"

    resumed = subprocess.run(
        command(server.url, killed),
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    finished = subprocess.run(
        command(server.url, clean), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr

    records = lines(results)
    keys = [key_of(r) for r in records]
    assert len(keys) == len(set(keys)) == TOTAL  # nothing lost, nothing twice
    assert {key_of(r) for r in lines(clean / "results.jsonl")} == set(keys)
    killed_report = json.loads((killed / "report.json").read_text())
    clean_report = json.loads((clean / "report.json").read_text())
    assert comparable(killed_report) == comparable(clean_report)
    assert killed_report["differences"] == clean_report["differences"]
    assert any(row["accuracy"] not in (0, 1) for row in killed_report["rows"])


def test_a_partial_last_line_is_cut_before_appending(tmp_path) -> None:
    store = RunStore(tmp_path)
    settings = RunSettings(model="m", benchmarks=["aime25"], efforts=["low"])
    store.begin(settings)
    record = {
        "benchmark": "aime25",
        "effort": "low",
        "item": "0",
        "repeat": 0,
        "outcome": "correct",
    }
    store.append(record)
    with store.results.open("a") as f:
        f.write('{"benchmark": "aime25", "effort": "lo')  # killed mid-write
    assert [key_of(r) for r in store.records()] == [key_of(record)]
    store.begin(settings)  # the resumed run
    store.append({**record, "item": "1"})
    assert [r["item"] for r in lines(store.results)] == ["0", "1"]


def test_resume_refuses_other_settings(tmp_path) -> None:
    import pytest

    from evals.store import ResumeError

    store = RunStore(tmp_path)
    store.begin(RunSettings(model="a", benchmarks=["aime25"], efforts=["low"]))
    store.begin(RunSettings(model="a", benchmarks=["aime25", "gpqa"], efforts=["low", "high"]))
    with pytest.raises(ResumeError, match="max_tokens"):
        store.begin(RunSettings(model="a", benchmarks=["aime25"], efforts=["low"], max_tokens=5))
