"""An Inspect AI task on a small local dataset, through the oss-agent model provider."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from eval_server import reply

inspect_ai = pytest.importorskip("inspect_ai", reason="the `inspect` extra is not installed")

from inspect_ai import Task, eval  # noqa: E402
from inspect_ai.dataset import MemoryDataset, Sample  # noqa: E402
from inspect_ai.scorer import includes  # noqa: E402
from inspect_ai.solver import generate  # noqa: E402

import evals.inspect_provider  # noqa: E402, F401  (registers the provider, as the entry point does)

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi"}


def test_inspect_task_runs_on_our_engine_with_effort_passed_through(tmp_path, model_server) -> None:
    def respond(prompt: str) -> str:
        country = next(c for c in CAPITALS if f"capital of {c}" in prompt)
        answer = CAPITALS[country] if country != "Kenya" else "Mombasa"
        return reply(f"The capital is {answer}.", reasoning="Recalling geography.")

    server = model_server(respond)
    task = Task(
        dataset=MemoryDataset(
            [
                Sample(input=f"What is the capital of {c}?", target=city)
                for c, city in CAPITALS.items()
            ]
        ),
        solver=generate(),
        scorer=includes(),
    )
    (log,) = eval(
        task, model=f"oss-agent/{server.url}", reasoning_effort="high", log_dir=str(tmp_path),
        display="none", max_tokens=256,
    )  # fmt: skip
    assert log.status == "success", log.error
    accuracy = log.results.scores[0].metrics["accuracy"].value
    assert accuracy == pytest.approx(2 / 3)
    prompts = [body["prompt"] for body in server.requests]
    from eval_server import ENC

    assert len(prompts) == 3 and all("Reasoning: high" in ENC.decode(p) for p in prompts)
    message = log.samples[0].output.choices[0].message
    assert any(getattr(c, "reasoning", None) == "Recalling geography." for c in message.content)


def test_the_entry_point_names_the_provider_module() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["inspect_ai"] == {
        "oss_agent": "evals.inspect_provider"
    }
    assert "inspect-ai" in " ".join(pyproject["project"]["optional-dependencies"]["inspect"])


def test_inspect_tools_become_function_calls_and_results_come_back(tmp_path, model_server) -> None:
    from inspect_ai.scorer import match
    from inspect_ai.solver import use_tools
    from inspect_ai.tool import tool

    @tool
    def multiply():
        async def execute(a: int, b: int) -> int:
            """Multiply two integers.

            Args:
                a: The first factor.
                b: The second factor.
            """
            return a * b

        return execute

    def respond(prompt: str) -> str:
        developer = prompt.split("<|start|>developer")[-1].split("<|end|>")[0]
        if "namespace functions" not in developer or "type multiply" not in developer:
            return reply("no tool was declared")
        if "<|start|>functions.multiply to=assistant" not in prompt:
            return (
                "<|channel|>analysis<|message|>Use the tool.<|end|><|start|>assistant"
                "<|channel|>commentary to=functions.multiply <|constrain|>json<|message|>"
                '{"a": 17, "b": 23}<|call|>'
            )
        result = prompt.rsplit("<|start|>functions.multiply to=assistant", 1)[1]
        value = result.split("<|message|>", 1)[1].split("<|end|>", 1)[0]
        return reply(value.strip())

    server = model_server(respond)
    task = Task(
        dataset=MemoryDataset([Sample(input="What is 17 times 23?", target="391")]),
        solver=[use_tools(multiply()), generate()],
        scorer=match(),
    )
    (log,) = eval(
        task, model=f"oss-agent/{server.url}", log_dir=str(tmp_path), display="none",
        max_tokens=256,
    )  # fmt: skip
    assert log.status == "success", log.error
    assert log.results.scores[0].metrics["accuracy"].value == 1.0
    messages = log.samples[0].messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1].tool_calls[0].function == "multiply"
    assert messages[1].tool_calls[0].arguments == {"a": 17, "b": 23}
    assert messages[2].text == "391"
