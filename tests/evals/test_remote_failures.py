"""A remote engine over a real loopback server: transient failures are retried within a
bound, permanent ones stop the run before any sample, and errors are never scores."""

from __future__ import annotations

import time

import pytest
from eval_server import benchmark_answers, scripted_model
from typer.testing import CliRunner

from agent.cli import app
from evals import load_report
from evals.retry import is_transient
from evals.store import RunSettings
from evals.sweep import EngineUnusable, Sweep
from runtime.remote import RemoteError, connect


def sweep(url: str, out, **engine_options) -> Sweep:
    settings = RunSettings(model=url, benchmarks=["aime25"], efforts=["low"], sample_data=True)
    engine = connect(url, backoff=0.01, **engine_options)
    return Sweep(settings, out, engine=engine, backoff=0.01, concurrency=2)


def test_429_then_200_scores_every_sample(tmp_path, model_server) -> None:
    server = model_server(
        scripted_model(benchmark_answers(["aime25"], 1)), statuses=[429, 429, 429]
    )
    progress = sweep(server.url, tmp_path).run()
    assert progress.errors == 0 and progress.done == 3
    row = load_report(tmp_path).row("aime25", "low")
    assert (row.correct, row.wrong, row.no_answer, row.errors) == (1, 1, 1, 0)
    assert len(server.requests) == 1 + 3 + 3  # preflight + three 429s retried + samples


def test_server_that_keeps_failing_gives_bounded_errors_not_scores(tmp_path, model_server) -> None:
    # The preflight passes, then every request answers 503.
    server = model_server(
        scripted_model(benchmark_answers(["aime25"], 1)), statuses=[200] + [503] * 1000
    )
    started = time.monotonic()
    run = sweep(server.url, tmp_path, retries=1)
    progress = run.run()
    assert time.monotonic() - started < 20
    records = run.store.records()
    assert progress.errors == 3 and all(
        r["outcome"] == "error" and r["score"] is None for r in records
    )
    assert all(
        r["attempts"] == 3 and "503" in r["error"] for r in records
    )  # bounded: 1 + 2 retries
    # engine: 2 tries per attempt; sweep: 3 attempts per sample
    assert len(server.requests) == 1 + 3 * 3 * 2
    row = load_report(tmp_path).row("aime25", "low")
    assert row.errors == 3 and row.correct + row.wrong + row.no_answer == 0


def test_401_fails_fast_before_any_sample(tmp_path, model_server) -> None:
    server = model_server(lambda prompt: "", statuses=[401] * 10)
    with pytest.raises(EngineUnusable, match="401"):
        sweep(server.url, tmp_path).run()
    assert len(server.requests) == 1
    assert not (tmp_path / "results.jsonl").exists()


def test_cli_reports_a_bad_url_and_exits(tmp_path, model_server) -> None:
    server = model_server(lambda prompt: "", statuses=[404] * 10)
    result = CliRunner().invoke(
        app,
        ["eval", "run", "--benchmark", "aime25", "--effort", "low", "--sample",
         "--model", server.url + "/v1", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "failed permanently" in result.output and "404" in result.output
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (RemoteError("http://x/v1/completions answered HTTP 429: slow down"), True),
        (RemoteError("http://x/v1/completions answered HTTP 408: timeout"), True),
        (RemoteError("http://x/v1/completions answered HTTP 409: conflict"), True),
        (RemoteError("http://x/v1/completions answered HTTP 502: bad gateway"), True),
        (RemoteError("cannot connect to http://x (refused)"), True),
        (RemoteError("the stream from http://x broke off: reset"), True),
        (RemoteError("http://x/v1/completions answered HTTP 401: bad key"), False),
        (RemoteError("http://x/v1/completions answered HTTP 404: not found"), False),
        (RemoteError("http://x sent something that is not JSON: 'oops'"), False),
        (AssertionError("a bug"), False),
    ],
)
def test_only_transient_failures_are_retried(error, transient) -> None:
    assert is_transient(error) is transient
