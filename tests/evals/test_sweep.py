"""The sweep end to end on the shipped sample files: a scripted engine (exact control of
every reply) and the local runtime on a random checkpoint (the real engine path)."""

from __future__ import annotations

import json

import pytest
from scripted_engine import ScriptedEngine, analysis, call, final, raw, sampled
from typer.testing import CliRunner

from agent.cli import app
from evals import compare_runs, load_report, run_eval
from evals.data import SAMPLES
from evals.store import RunSettings
from evals.sweep import Sweep

BENCHMARKS = ["gpqa", "aime24", "aime25", "mmlu", "healthbench", str(SAMPLES / "example.jsonl")]
REASONING = "SECRET-REASONING weighing the options"


def scripted_reply(sample, index: int) -> list[int]:
    """Right on even items, wrong on odd ones; item 1 of each benchmark rambles past the
    token limit and item 2 never states an answer."""
    if index == 1:
        return raw("<|channel|>analysis<|message|>" + "hmm " * 200)
    if index == 2:
        return sampled(analysis(REASONING), final("It is hard to say."))
    right = index % 2 == 0
    if sample.grader == "rubric":
        text = "Press on the cut firmly with a clean cloth."
    elif sample.grader == "choice":
        wrong = "A" if sample.gold != "A" else "B"
        text = f"**Answer: {sample.gold if right else wrong}**"
    elif sample.grader in ("integer", "math", "numeric"):
        text = f"So the answer is $\\boxed{{{sample.gold if right else '999'}}}$."
    else:
        text = f"Answer: {sample.gold if right else 'Sydney'}"
    return sampled(analysis(REASONING), final(text))


def test_sweep_grades_every_sample_file_and_keeps_outcomes_apart(tmp_path) -> None:
    settings = RunSettings(
        model="scripted",
        benchmarks=BENCHMARKS,
        efforts=["low", "high"],
        sample_data=True,
        max_tokens=64,
        grader_model="scripted-grader",
    )
    # The rubric grader answers one verdict per rubric item: all met for the first
    # HealthBench conversation (10 of 10 points, the -6 item not met), the first of two
    # items for the second (8 of 12 points).
    verdicts = {"sample-hb-1": [True, True, False], "sample-hb-2": [True, False]}
    grader_turns = []
    probe = Sweep(
        settings, tmp_path / "probe", engine=ScriptedEngine([]), grader_engine=ScriptedEngine([])
    )
    plan = probe.plan()
    turns, expected = [], []
    for benchmark, effort, sample in plan:
        index = [i["id"] for i in benchmark.items].index(sample.item_id)
        turns.append(scripted_reply(sample, index))
        if sample.grader == "rubric" and index not in (1, 2):
            for met in verdicts[sample.item_id]:
                grader_turns.append(
                    sampled(final(json.dumps({"explanation": "ok", "criteria_met": met})))
                )
        expected.append((benchmark.name, effort, sample.item_id, index))
    grader = ScriptedEngine(grader_turns)
    sweep = Sweep(settings, tmp_path / "run", engine=ScriptedEngine(turns), grader_engine=grader)
    progress = sweep.run()

    records = {(r["benchmark"], r["effort"], r["item"]): r for r in sweep.store.records()}
    assert progress.done == len(plan) == len(records)
    for name, effort, item, index in expected:
        record = records[(name, effort, item)]
        if index == 1:
            assert record["outcome"] == "truncated"
            assert record["score"] == 0.0 and record["stop_reason"] == "max_tokens"
        elif index == 2:
            assert record["outcome"] == "no_answer"
        elif name == "healthbench":
            assert record["score"] == pytest.approx(1.0 if item == "sample-hb-1" else 8 / 12)
        else:
            assert record["outcome"] == ("correct" if index % 2 == 0 else "wrong"), record
        assert record["usage"]["reasoning_tokens"] > 0
    # The grader saw the final answer and never the reasoning.
    grader_prompts = [grader.prompt_text(i) for i in range(len(grader.prompts))]
    assert grader_prompts and all(REASONING not in p for p in grader_prompts)
    assert all("Press on the cut firmly" in p for p in grader_prompts)

    report = load_report(tmp_path / "run")
    gpqa = report.row("gpqa", "low")
    # 4 items: 0 right, 1 truncated, 2 no answer, 3 wrong.
    assert (gpqa.samples, gpqa.correct, gpqa.wrong, gpqa.no_answer, gpqa.truncated) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert gpqa.accuracy == 0.25 and gpqa.ci_low <= 0.25 <= gpqa.ci_high
    assert gpqa.published == {"gpt-oss-120b": 67.1, "gpt-oss-20b": 56.8}
    assert report.row("example", "high").published == {}
    assert {(d.benchmark, d.from_, d.to) for d in report.differences} >= {("gpqa", "low", "high")}
    markdown = report.to_markdown()
    assert "| gpqa | low | 25.0 |" in markdown and "56.8 / 67.1" in markdown


def test_gpqa_choices_shuffle_per_repeat_with_a_fixed_seed() -> None:
    from evals.benchmarks import get_benchmark

    benchmark = get_benchmark("gpqa")
    benchmark.load(sample=True)
    item = benchmark.items[0]
    golds = [benchmark.sample(item, repeat).gold for repeat in range(8)]
    assert len(set(golds)) > 1  # the right answer moves between repeats
    assert golds == [benchmark.sample(item, repeat).gold for repeat in range(8)]
    sample = benchmark.sample(item, 3)
    right_line = next(
        line for line in sample.task.splitlines() if line.startswith(f"({sample.gold})")
    )
    assert item["choices"][0] in right_line


def test_engine_failures_are_recorded_as_errors_not_scores(tmp_path) -> None:
    # The engine has replies for two of the three AIME samples; the third call fails.
    settings = RunSettings(
        model="scripted", benchmarks=["aime25"], efforts=["low"], sample_data=True
    )
    turns = [sampled(final("\\boxed{20}")), sampled(final("\\boxed{11}"))]
    sweep = Sweep(settings, tmp_path, engine=ScriptedEngine(turns), retries=2, backoff=0)
    progress = sweep.run()
    records = sweep.store.records()
    errors = [r for r in records if r["outcome"] == "error"]
    assert len(errors) == 1 and errors[0]["score"] is None and errors[0]["attempts"] == 1
    assert "more turns than were scripted" in errors[0]["error"]
    assert progress.errors == 1
    row = load_report(tmp_path).row("aime25", "low")
    assert (row.errors, row.accuracy) == (1, 1.0)  # errors are left out of accuracy

    # Resuming runs the failed sample again, and only that one; its new result replaces
    # the error.
    engine = ScriptedEngine([sampled(final("\\boxed{48}"))])
    Sweep(settings, tmp_path, engine=engine).run()
    assert len(engine.prompts) == 1
    row = load_report(tmp_path).row("aime25", "low")
    assert (row.samples, row.errors, row.wrong, row.correct) == (3, 0, 1, 2)


def test_harmony_repairs_are_recorded_per_sample_and_counted_in_the_report(tmp_path) -> None:
    """A model that forgets the channel still gets its answer graded; the repair the parser
    made is kept with the sample and summed per effort, so a format regression shows."""
    settings = RunSettings(
        model="scripted", benchmarks=["aime25"], efforts=["low"], sample_data=True
    )
    turns = [
        raw("\\boxed{20}<|return|>"),
        sampled(final("\\boxed{11}")),
        sampled(final("\\boxed{48}")),
    ]
    sweep = Sweep(settings, tmp_path, engine=ScriptedEngine(turns))
    sweep.run()
    repaired = [r for r in sweep.store.records() if r["recoveries"]]
    assert len(repaired) == 1 and repaired[0]["outcome"] == "correct"
    report = load_report(tmp_path)
    assert report.row("aime25", "low").recoveries == len(repaired[0]["recoveries"])
    assert "| parser repairs |" in report.to_markdown()


def test_compare_lists_flips_and_the_change(tmp_path) -> None:
    settings = dict(benchmarks=["aime25"], efforts=["low"], sample_data=True)
    right = [sampled(final(f"\\boxed{{{g}}}")) for g in ("20", "11", "49")]
    mixed = [sampled(final(f"\\boxed{{{g}}}")) for g in ("20", "12", "48")]
    run_eval(ScriptedEngine(right), out=tmp_path / "a", **settings)
    run_eval(ScriptedEngine(mixed), out=tmp_path / "b", **settings)
    comparison = compare_runs(tmp_path / "a", tmp_path / "b")
    (change,) = comparison.changes
    assert change.difference == pytest.approx(-2 / 3) and change.items == 3
    assert [(f.item, f.before, f.after) for f in change.flips] == [
        ("1", "correct", "wrong"),
        ("2", "correct", "wrong"),
    ]
    assert "-66.7" in comparison.to_markdown()

    runner = CliRunner()
    shown = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert shown.exit_code == 0 and "- 1, 0: correct -> wrong" in shown.output
    report = runner.invoke(app, ["eval", "report", str(tmp_path / "b"), "--json"])
    assert report.exit_code == 0
    (row,) = json.loads(report.output)["rows"]
    assert (row["benchmark"], row["correct"], row["wrong"]) == ("aime25", 1, 2)
    missing = runner.invoke(app, ["eval", "report", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "no results" in missing.output


@pytest.fixture(scope="module")
def mini_checkpoint(tmp_path_factory):
    from runtime.testing import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("mini"), "mini", seed=0)


def test_sweep_runs_the_local_runtime(tmp_path, mini_checkpoint, monkeypatch) -> None:
    # The PyTorch path: building the fused kernel (tested in tests/runtime) takes minutes
    # on a cold cache and says nothing about the sweep.
    monkeypatch.setenv("OSS_AGENT_NO_KERNELS", "1")
    report = run_eval(
        str(mini_checkpoint),
        ["aime25"],
        ["low"],
        out=tmp_path,
        limit=1,
        max_tokens=4,
        sample_data=True,
    )
    (record,) = report.records
    # Random weights ramble: the sample stops at the limit and is never graded.
    assert record["outcome"] == "truncated" and record["usage"]["completion_tokens"] == 4
    assert record["usage"]["prompt_tokens"] > 50
    assert (tmp_path / "report.html").exists() and (tmp_path / "report.json").exists()


def test_tools_are_real_in_the_sweep(tmp_path, sandbox_image) -> None:
    # AIME with python: the model's code runs in the real sandbox and its output comes back.
    engine = ScriptedEngine(
        [
            sampled(analysis("check"), call("python", "print((12**2 + 16**2) ** 0.5)")),
            sampled(final("The diagonal is \\boxed{20}.")),
        ]
    )
    report = run_eval(
        engine, ["aime25"], ["low"], out=tmp_path, limit=1, tools=["python"], sample_data=True
    )
    (record,) = report.records
    assert record["outcome"] == "correct" and record["tools"] == ["python"]
    (tool_call,) = record["tool_calls"]
    assert tool_call["recipient"] == "python" and "20.0" in tool_call["output"]
    assert "20.0" in engine.prompt_text(1)  # the tool's output went back to the model
    row = report.row("aime25", "low")
    assert row.tool_calls == 1.0
    assert row.published == {"gpt-oss-120b": 72.9, "gpt-oss-20b": 57.5}  # the with-tools row


def test_a_grader_that_gives_no_verdict_makes_an_error_not_a_score(tmp_path) -> None:
    settings = RunSettings(
        model="scripted",
        benchmarks=["healthbench"],
        efforts=["low"],
        sample_data=True,
        limit=1,
        grader_model="scripted-grader",
    )
    engine = ScriptedEngine([sampled(final("Press firmly on the cut."))])
    # Two tries at the first rubric item, neither of them JSON.
    grader = ScriptedEngine([sampled(final("I think so.")), sampled(final("Yes, it is met."))])
    sweep = Sweep(settings, tmp_path, engine=engine, grader_engine=grader)
    sweep.run()
    (record,) = sweep.store.records()
    assert record["outcome"] == "error" and record["score"] is None
    assert "JSON verdict" in record["error"]


def test_setting_problems_surface_before_any_engine_loads(tmp_path) -> None:
    # The checkpoint does not exist: the missing grader is reported first, not the path.
    settings = RunSettings(
        model=str(tmp_path / "no-such-checkpoint"),
        benchmarks=["healthbench"],
        efforts=["low"],
        sample_data=True,
    )
    with pytest.raises(ValueError, match="grader model"):
        Sweep(settings, tmp_path / "run").run()
    # A finished run is reported again without loading anything.
    done = RunSettings(model="scripted", benchmarks=["aime25"], efforts=["low"], sample_data=True)
    Sweep(done, tmp_path / "done", engine=ScriptedEngine([sampled(final("1"))] * 3)).run()
    progress = Sweep(done.model_copy(), tmp_path / "done").run()  # model "scripted": no engine
    assert (progress.done, progress.total, progress.skipped) == (3, 3, 3)
