"""The eval example runs as written against a model server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from eval_server import benchmark_answers, scripted_model

ROOT = Path(__file__).parents[2]


def test_eval_example_runs_and_reports_the_effort_change(tmp_path, model_server) -> None:
    server = model_server(scripted_model(benchmark_answers(["aime25", "gpqa"], 1)))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "eval_sweep.py"), "--model", server.url,
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| gpqa | high | 100.0 |" in done.stdout
    assert "gpqa: low -> high changes accuracy by +50.0 points" in done.stdout
    assert (tmp_path / "report.html").exists()
