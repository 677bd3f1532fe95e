"""`oss-agent` as a user runs it: a real subprocess of the console script, talking to a real
HTTP server on loopback whose answers are scripted (the model is the only stand-in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scripted_engine import ENC, ScriptedEngine, analysis, call, final, raw, sampled
from scripted_server import ScriptedServer

from agent import __version__
from agent.config import ConfigError, load_settings
from agent.harmony import Message, Role

REPO = Path(__file__).parents[2]


class Cli:
    """Runs `oss-agent` with this checkout on PYTHONPATH, no config file, no OSS_AGENT_*
    variables from the developer's shell, and a data home inside the test's folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OSS_AGENT_")}
        self.env.update(
            PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            OSS_AGENT_CONFIG=str(tmp_path / "config.toml"),
            XDG_DATA_HOME=str(tmp_path / "xdg"),
            EXA_API_KEY="",
        )
        self.cwd = tmp_path

    def __call__(self, *args: str, input: str | None = None, **env: str):
        done = subprocess.run(
            ["oss-agent", *args],
            capture_output=True,
            text=True,
            input=input,
            env={**self.env, **env},
            cwd=self.cwd,
            timeout=120,
        )
        done.output = done.stdout + done.stderr
        return done


@pytest.fixture
def cli(tmp_path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def server():
    """A loopback model server; script its turns with `server.engine.turns`."""
    running = ScriptedServer(ScriptedEngine([]))
    yield running
    running.close()


def python_call(code: str) -> Message:
    return (
        Message.from_role_and_content(Role.ASSISTANT, code)
        .with_channel("analysis")
        .with_recipient("python")
        .with_content_type("code")
    )


# -- what a run shows ------------------------------------------------------------------------


def test_run_streams_reasoning_and_answer_and_says_it_answered(cli, server) -> None:
    server.engine.turns.append(sampled(analysis("Just greet."), final("Hello!")))
    done = cli("run", "hi", "--model", server.url, "--effort", "low")
    assert done.returncode == 0, done.output
    assert "Just greet." in done.stdout and "Hello!" in done.stdout
    assert "answered (1 turn, 0 tool calls," in done.stdout
    assert "Reasoning: low" in server.engine.prompt_text(0)


def test_output_stuck_in_an_unterminated_header_is_shown_with_why_the_run_stopped(
    cli, server
) -> None:
    # What a random checkpoint does: text after <|channel|> that never reaches <|message|>.
    server.engine.turns.append(raw("<|channel|>final the answer is 391 " + "and more " * 20))
    done = cli("run", "17 * 23?", "--model", server.url, "--max-tokens", "12")
    assert done.returncode == 1, done.output
    assert "did not follow the harmony format" in done.stdout
    assert "the answer is 391" in done.stdout
    assert "stopped: the model wrote 12 tokens in one turn, the limit, without finishing " in (
        done.stdout
    )
    assert "1 turns" not in done.output and "[max_tokens]" not in done.output


def test_time_limit_exits_1_and_says_so(cli, server) -> None:
    server.engine.turns.append(sampled(analysis("long " * 50), final("x")))
    done = cli("run", "go", "-m", server.url, "--max-seconds", "0.001")
    assert done.returncode == 1, done.output
    assert "stopped: the time limit ran out (--max-seconds)" in done.stdout


def test_json_and_save_then_resume_with_the_transcripts_model_and_effort(cli, server) -> None:
    server.engine.turns += [sampled(final("4")), sampled(final("8"))]
    path = cli.cwd / "s.json"
    done = cli("run", "2+2?", "-m", server.url, "--effort", "low", "--json", "--save", str(path))
    assert done.returncode == 0, done.output
    result = json.loads(done.stdout)
    assert (result["final_output"], result["stop_reason"]) == ("4", "final")
    assert result["conversation"]["messages"][-1]["content"][0]["text"] == "4"

    done = cli("run", "times 2?", "--resume", str(path))  # no --model: the transcript's
    assert done.returncode == 0, done.output
    assert "<|channel|>final<|message|>4<|end|><|start|>user<|message|>times 2?" in (
        server.engine.prompt_text(1)
    )
    assert "Reasoning: low" in server.engine.prompt_text(1)
    saved = json.loads(path.read_text())
    assert [r["final_output"] for r in saved["runs"]] == ["4", "8"]
    assert not [p for p in cli.cwd.iterdir() if p.name.startswith(".s.json")]  # no scratch


# -- checked before any work -----------------------------------------------------------------


def test_unwritable_save_path_fails_before_the_run(cli, server) -> None:
    (cli.cwd / "a-file").write_text("")
    for target in (cli.cwd / "a-file" / "s.json", cli.cwd):
        done = cli("run", "hi", "-m", server.url, "--save", str(target))
        assert done.returncode == 2, done.output
        assert f"cannot save the transcript to {target}" in done.stderr
    assert server.engine.prompts == []


def test_run_says_when_the_token_limit_cut_a_call_off(cli, server) -> None:
    server.engine.turns.append(sampled(call("python", "print(" + "1 + " * 40 + "1)")))
    done = cli("run", "go", "-m", server.url, "--max-tokens", "12")
    assert done.returncode == 1, done.output
    assert "python: cut off by the token limit, not run" in done.output
    assert "stopped: the model wrote 12 tokens in one turn" in done.output


def test_no_model_runs_the_demo_model_and_says_so_in_one_line(cli) -> None:
    done = cli("run", "hi", "--tools", "none", "--max-tokens", "16")
    assert done.returncode in (0, 1), done.output  # it ran (answered or not)
    notice = [line for line in done.stderr.splitlines() if "no model configured" in line]
    assert len(notice) == 1, done.stderr
    assert "using nano" in notice[0]
    assert 'hf download openai/gpt-oss-20b --include "original/*"' in notice[0]
    assert "--model http://localhost:8000" in notice[0]


def test_without_a_model_the_python_tool_is_on_unless_tools_are_chosen(tmp_path) -> None:
    env = {"OSS_AGENT_CONFIG": str(tmp_path / "none.toml")}
    demo = load_settings({}, env=env)
    assert demo.require_model() == "nano" and demo.tools == ["python"]
    assert load_settings({"tools": "none"}, env=env).tools == []
    assert load_settings({"tools": "browser"}, env=env).tools == ["browser"]
    chosen = load_settings({"model": "nano"}, env=env)  # a model named: tools as configured
    assert chosen.tools == []


def test_the_bundled_nano_model_is_a_valid_model_name_without_a_folder(tmp_path) -> None:
    settings = load_settings({"model": "nano"}, env={"OSS_AGENT_CONFIG": str(tmp_path / "x")})
    assert settings.require_model() == "nano"


@pytest.mark.parametrize(
    ("model", "hint"),
    [
        ("localhost:8000", "--model http://localhost:8000"),
        ("127.0.0.1:8000/v1", "--model http://127.0.0.1:8000/v1"),
        (
            "openai/gpt-oss-20b",
            'hf download openai/gpt-oss-20b --include "original/*" --local-dir gpt-oss-20b/',
        ),
        ("/nonexistent/checkpoint", "no such folder"),
        ("gpt-oss-20b/original", 'hf download openai/gpt-oss-20b --include "original/*"'),
    ],
)
def test_model_that_cannot_work_gets_a_hint_at_once(cli, model, hint) -> None:
    done = cli("run", "hi", "--model", model)
    assert done.returncode == 2, done.output
    assert hint in done.stderr
    assert "loading" not in done.stderr


@pytest.mark.parametrize(
    ("flag", "value"), [("--max-tokens", "0"), ("--max-turns", "-1"), ("--max-seconds", "0")]
)
def test_limits_must_be_positive(cli, server, flag, value) -> None:
    done = cli("run", "hi", "-m", server.url, flag, value)
    assert done.returncode == 2, done.output
    assert "greater than 0" in done.stderr
    assert server.engine.prompts == []


def test_unknown_tool(cli, server) -> None:
    done = cli("run", "hi", "-m", server.url, "--tools", "python,shell")
    assert done.returncode == 2 and "unknown tool 'shell'" in done.stderr


def test_python_tool_without_docker_fails_before_the_model_loads(cli, tmp_path) -> None:
    (tmp_path / "model").mkdir()  # a folder that would only fail once loaded
    done = cli(
        "run", "hi", "-m", str(tmp_path / "model"), "--tools", "python",
        DOCKER_HOST="unix:///nonexistent/docker.sock",
    )  # fmt: skip
    assert done.returncode == 2, done.output
    assert "--tools python needs a Docker engine" in done.stderr
    assert "loading" not in done.stderr


def test_browser_without_a_key_names_the_variable_and_the_flags(cli, server) -> None:
    done = cli("run", "hi", "-m", server.url, "--tools", "browser")
    assert done.returncode == 2, done.output
    assert "set the environment variable EXA_API_KEY" in done.stderr
    assert "--browser-backend" in done.stderr and "--browser-source" in done.stderr
    done = cli(
        "run", "hi", "-m", server.url, "--tools", "browser", OSS_AGENT_BROWSER_BACKEND="local"
    )
    assert done.returncode == 2, done.output
    assert "--browser-source FOLDER_OR_JSONL" in done.stderr
    assert "OSS_AGENT_BROWSER_SOURCE" in done.stderr


def test_local_browser_backend_searches_the_given_folder(cli, server, tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hippos.md").write_text("# Hippo facts\n\nHippos sleep in water.\n")
    server.engine.turns += [
        sampled(call("browser.search", '{"query": "hippo"}')),
        sampled(final("They sleep in water.")),
    ]
    done = cli(
        "run", "Where do hippos sleep?", "-m", server.url, "--tools", "browser",
        "--browser-source", str(docs), OSS_AGENT_BROWSER_BACKEND="local",
    )  # fmt: skip
    assert done.returncode == 0, done.output
    assert "Hippo facts" in done.stdout and "They sleep in water." in done.stdout
    # From the config file as well.
    cli.env["OSS_AGENT_CONFIG"] = str(tmp_path / "browser.toml")
    (tmp_path / "browser.toml").write_text(
        f'browser_backend = "local"\nbrowser_source = "{docs}"\ntools = ["browser"]\n'
    )
    server.engine.turns += [
        sampled(call("browser.search", '{"query": "hippo"}')),
        sampled(final("In water.")),
    ]
    done = cli("run", "Where do hippos sleep?", "-m", server.url)
    assert done.returncode == 0, done.output
    assert "Hippo facts" in done.stdout


# -- the python tool's files -----------------------------------------------------------------


@pytest.mark.docker
def test_files_the_python_tool_saves_are_kept_and_their_folder_printed(
    cli, server, sandbox_image, tmp_path
) -> None:
    save = python_call("open('/mnt/data/result.txt', 'w').write('391')")
    server.engine.turns += [sampled(save), sampled(final("Saved."))] * 2
    folder = tmp_path / "files"
    done = cli("run", "save it", "-m", server.url, "--tools", "python", "--data-dir", str(folder))
    assert done.returncode == 0, done.output
    assert (folder / "result.txt").read_text() == "391"
    assert f"files saved by the python tool: {folder}" in done.stdout

    done = cli("run", "save it", "-m", server.url, "--tools", "python")  # the default folder
    assert done.returncode == 0, done.output
    [kept] = (tmp_path / "xdg" / "oss-agent" / "files").iterdir()
    assert (kept / "result.txt").read_text() == "391"
    assert f"files saved by the python tool: {kept}" in done.stdout


@pytest.mark.docker
def test_a_session_that_saved_nothing_leaves_no_folder(cli, server, sandbox_image) -> None:
    server.engine.turns += [sampled(python_call("1 + 1")), sampled(final("2"))]
    done = cli("run", "add", "-m", server.url, "--tools", "python")
    assert done.returncode == 0, done.output
    assert "files saved" not in done.output
    assert not list((cli.cwd / "xdg" / "oss-agent" / "files").glob("*"))


# -- chat ------------------------------------------------------------------------------------


def test_chat_session_with_commands(cli, server) -> None:
    server.engine.turns += [sampled(final("Hi!")), sampled(final("Again."))]
    path = cli.cwd / "chat.json"
    script = (
        f"/effort high\nhello\n/tools python,nonsense\n/tools\nmore\n/save {path}\n/reset\n/exit\n"
    )
    done = cli("chat", "-m", server.url, input=script)
    assert done.returncode == 0, done.output
    assert "reasoning effort: high" in done.stdout
    assert "unknown tool 'nonsense'" in done.stdout and "tools unchanged" in done.stdout
    assert "tools: none" in done.stdout
    assert "Hi!" in done.stdout and "Again." in done.stdout
    assert "Reasoning: high" in server.engine.prompt_text(0)
    assert "<|message|>Hi!<|end|><|start|>user<|message|>more" in server.engine.prompt_text(1)
    assert len(json.loads(path.read_text())["runs"]) == 2


# -- conventions -----------------------------------------------------------------------------


def test_version_flag(cli) -> None:
    done = cli("--version")
    assert (done.returncode, done.stdout) == (0, f"oss-agent {__version__}\n")


@pytest.mark.parametrize(
    "command", [("run",), ("chat",), ("model", "random"), ("model", "info"), ("sandbox", "build")]
)
def test_help_shows_defaults_and_flags_as_flags(cli, command) -> None:
    done = cli(*command, "--help")
    assert done.returncode == 0, done.output
    text = " ".join(done.stdout.split())  # help wraps at 80 columns
    assert "<bool>" not in text  # a flag takes no value
    if command == ("run",):
        assert "--json Print" in text
        assert "[default: 8192]" in text and "[default: medium]" in text
    if command == ("model", "random"):
        assert "--force Overwrite" in text and "[default: tiny]" in text


def test_verbose_logs_retries_and_the_default_is_silent(cli) -> None:
    for flags, logged in (([], False), (["-v"], True)):
        server = ScriptedServer(ScriptedEngine([sampled(final("ok"))]), fail_first=1)
        try:
            done = cli(*flags, "run", "hi", "-m", server.url)
        finally:
            server.close()
        assert done.returncode == 0, done.output
        assert ("answered HTTP 503; retry 1 of" in done.stderr) is logged, done.stderr


def test_model_random_refuses_to_overwrite_unless_forced(cli, tmp_path) -> None:
    path = tmp_path / "ckpt"
    assert cli("model", "random", str(path)).returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    done = cli("model", "random", str(path), "--seed", "1")
    assert done.returncode == 2, done.output
    assert f"{path} already holds a checkpoint; pass --force" in done.stderr
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == before
    done = cli("model", "random", str(path), "--seed", "1", "--force")
    assert done.returncode == 0, done.output
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} != before


def test_model_info_on_a_missing_folder_is_a_usage_error(cli, tmp_path) -> None:
    done = cli("model", "info", str(tmp_path / "missing"))
    assert done.returncode == 2 and "error:" in done.stderr


@pytest.mark.parametrize("command", ["build", "clean"])
def test_sandbox_commands_without_docker_are_usage_errors(cli, command) -> None:
    done = cli("sandbox", command, DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert done.returncode == 2, done.output
    assert "Cannot reach a Docker engine" in done.stderr


def test_settings_precedence(tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('model = "/ckpt"\neffort = "low"\ntools = ["python"]\nmax_turns = 3\n')
    env = {"OSS_AGENT_CONFIG": str(config), "OSS_AGENT_EFFORT": "HIGH"}
    settings = load_settings({"tools": "browser,python", "max_turns": None}, env=env)
    assert (settings.model, settings.effort) == ("/ckpt", "high")
    assert (settings.tools, settings.max_turns) == (["browser", "python"], 3)
    with pytest.raises(ConfigError, match="effort"):
        load_settings({"effort": "max"}, env=env)


@pytest.mark.parametrize("name", ["tools", "agent", "runtime", "evals"])
def test_a_users_module_named_like_a_package_is_named_with_what_to_rename(tmp_path, name) -> None:
    (tmp_path / f"{name}.py").write_text("def helper():\n    return 1\n")
    importer = "from tools.functions import function_tool" if name == "agent" else "import agent"
    (tmp_path / "script.py").write_text(f"{importer}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: {tmp_path / name}.py hides oss-agent's `{name}` package")
    assert f"Rename it (for example to my_{name}.py)" in last


def test_special_token_text_round_trips_through_the_scripted_server() -> None:
    # The stand-in itself: what it streams is exactly what was scripted.
    engine = ScriptedEngine([sampled(final("x"))])
    server = ScriptedServer(engine)
    try:
        from runtime.remote import connect

        tokens = list(connect(server.url).generate([1, 2], max_tokens=50, stop_tokens=[200002]))
    finally:
        server.close()
    assert ENC.decode(tokens) == "<|channel|>final<|message|>x<|return|>"
