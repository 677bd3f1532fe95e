"""Data loaders: csv, jsonl and parquet from a path or a URL, cached with a checksum."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import typer

from agent.cli import app
from evals.benchmarks import BENCHMARK_NAMES, get_benchmark
from evals.data import SAMPLES, DataError, cached_path, load_records

CSV = b"Question,Answer\nWhat is 2+2?,4\n"


@pytest.fixture
def file_server():
    """Serves CSV at /data/q.csv on loopback and counts requests."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            status, body = (200, CSV) if self.path == "/data/q.csv" else (404, b"missing")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", hits
    httpd.shutdown()
    httpd.server_close()


def test_url_is_downloaded_once_and_its_checksum_recorded(file_server, eval_cache) -> None:
    base, hits = file_server
    url = f"{base}/data/q.csv"
    assert load_records(url) == [{"Question": "What is 2+2?", "Answer": "4"}]
    assert load_records(url) == [{"Question": "What is 2+2?", "Answer": "4"}]
    assert hits == ["/data/q.csv"]
    manifest = json.loads((eval_cache / "checksums.json").read_text())
    assert manifest[url]["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert cached_path(url).read_bytes() == CSV

    cached_path(url).write_bytes(b"Question,Answer\nWhat is 2+2?,5\n")  # corrupted
    with pytest.raises(DataError, match="does not match the checksum"):
        load_records(url)


def test_offline_error_names_the_file_and_where_to_put_it(eval_cache) -> None:
    url = "http://127.0.0.1:9/simple-evals/gpqa_diamond.csv"  # nothing listens on port 9
    with pytest.raises(DataError) as error:
        load_records(url)
    message = str(error.value)
    assert url in message and str(cached_path(url)) in message
    # Put there by hand, it is used (and its checksum recorded) without a network.
    cached_path(url).parent.mkdir(parents=True, exist_ok=True)
    cached_path(url).write_bytes(CSV)
    assert load_records(url)[0]["Answer"] == "4"


def test_a_missing_file_is_an_error_not_a_download(file_server) -> None:
    base, _ = file_server
    with pytest.raises(DataError, match="404"):
        load_records(f"{base}/data/missing.csv")


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_every_benchmark_reads_its_sample_file(name) -> None:
    benchmark = get_benchmark(name)
    benchmark.load(sample=True)
    assert len(benchmark.items) >= 2
    sample = benchmark.sample(benchmark.items[0], 0)
    assert sample.task.strip()
    assert sample.gold or sample.rubric


def test_sample_files_cover_every_format() -> None:
    formats = {path.suffix for path in SAMPLES.iterdir()}
    assert {".csv", ".jsonl", ".parquet"} <= formats
    assert load_records(SAMPLES / "aime2024_sample.parquet")[0]["answer"] == "33"


def test_user_jsonl_items_and_clear_errors(tmp_path) -> None:
    benchmark = get_benchmark(str(SAMPLES / "example.jsonl"))
    benchmark.load()
    planet = next(i for i in benchmark.items if i["id"] == "planet")
    sample = benchmark.sample(planet, 0)
    assert "(B) Jupiter" in sample.task and sample.gold == "B" and sample.grader == "choice"

    path = tmp_path / "mine.jsonl"
    path.write_text(
        json.dumps({"question": "2+2?", "answer": 4, "grader": "numeric"})
        + "\n"
        + json.dumps({"question": "Pick", "choices": ["x", "y"], "answer": "y", "grader": "choice"})
        + "\n"
    )
    mine = get_benchmark(str(path))
    mine.load()
    assert [i["answer"] for i in mine.items] == ["4", "B"]

    path.write_text(json.dumps({"question": "2+2?", "grader": "fuzzy"}) + "\n")
    with pytest.raises(DataError, match="line 1") as error:
        get_benchmark(str(path)).load()
    assert "answer" in str(error.value) and "grader" in str(error.value)
    path.write_text('{"question": "2+2?", "answer": "4"}\nnot json\n')
    with pytest.raises(DataError, match=r"mine\.jsonl:2"):
        get_benchmark(str(path)).load()


def test_unknown_benchmark_names_the_choices() -> None:
    with pytest.raises(ValueError, match="gpqa, aime24, aime25"):
        get_benchmark("gqpa")


def test_nano_benchmark_is_the_shipped_held_out_tasks_asked_as_in_training() -> None:
    benchmark = get_benchmark("nano")
    assert len(benchmark.items) == 200
    sample = benchmark.sample(benchmark.items[0], 0)
    assert sample.task == benchmark.items[0]["question"]  # no format line appended
    assert sample.gold == benchmark.items[0]["answer"]


def test_eval_run_help_names_every_built_in_benchmark() -> None:
    command = typer.main.get_command(app).commands["eval"].commands["run"]
    (option,) = [param for param in command.params if param.name == "benchmark"]
    named = set(re.findall(r"\w+", option.help))
    assert [name for name in BENCHMARK_NAMES if name not in named] == []
