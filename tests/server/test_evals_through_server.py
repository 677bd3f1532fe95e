"""The evals runner against our own server: the sweep scores what the local model writes."""

from __future__ import annotations

from server_helpers import serving

from agent.server import create_app
from evals import run_eval
from runtime.batch import BatchedEngine

SWEEP = dict(
    benchmarks=["aime25", "mmlu"],
    efforts=["low"],
    limit=2,
    max_tokens=24,
    max_turns=2,
    temperature=0.0,
    sample_data=True,
)


def outcomes(report) -> list[tuple]:
    fields = ("benchmark", "item", "outcome", "final_output")
    return sorted(
        (*(r[f] for f in fields), r["usage"]["completion_tokens"]) for r in report.records
    )


def test_a_sweep_through_the_server_scores_what_the_local_model_writes(mini_model, tmp_path):
    local = run_eval(mini_model, out=tmp_path / "local", **SWEEP)
    engine = BatchedEngine(mini_model, max_batch=4)
    with serving(create_app(engine, model_name="mini")) as url:
        served = run_eval(url, out=tmp_path / "served", concurrency=4, **SWEEP)
    assert len(served.records) == 4
    assert all(r["usage"]["completion_tokens"] > 0 for r in local.records)
    assert not [r for r in served.records if r["outcome"] == "error"]
    assert outcomes(served) == outcomes(local)
