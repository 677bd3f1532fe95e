"""The HTML report in a real headless browser (Debian's chromium), driven over the
DevTools protocol: no console errors or exceptions, the table and the plot are there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from scripted_engine import ScriptedEngine, analysis, call, final, sampled

from evals import run_eval

websocket = pytest.importorskip("websocket", reason="websocket-client is in the test extra")

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless chromium with a fresh profile; yields a function that loads a page and
    returns (console errors, evaluate(js))."""
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide chromium (.ci/install installs Debian's package)")
        pytest.skip("needs Debian's chromium (apt-get install chromium; .ci/install does)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        import httpx

        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        yield _Page(websocket.create_connection(page["webSocketDebuggerUrl"], timeout=20))
    finally:
        process.kill()
        process.wait(10)


class _Page:
    """Just enough of the DevTools protocol: commands, and the events that report errors."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []
        for method in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.send(method)

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.ws.recv()))

    def load(self, path: Path) -> list[str]:
        """Navigate to a file; the console errors and exceptions it caused."""
        self.events.clear()
        self.send("Page.navigate", url=path.as_uri())
        self.wait_for("Page.loadEventFired")
        self.evaluate("0")  # drain what the page logged while loading
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif event.get("method") == "Runtime.consoleAPICalled" and params["type"] == "error":
                errors.append(" ".join(str(a.get("value")) for a in params["args"]))
            elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(params["entry"]["text"])
        return errors

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def test_the_harness_sees_console_errors(browser, tmp_path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><script>console.error('boom'); undefinedCall();</script></body></html>"
    )
    errors = browser.load(page)
    assert any("boom" in e for e in errors) and len(errors) >= 2


def test_report_page_shows_table_plot_and_transcripts(browser, tmp_path) -> None:
    low = [sampled(analysis("a short thought"), final("\\boxed{20}")) for _ in range(3)]
    high = [
        sampled(analysis("a much longer chain of thought " * 20), call("python", "print(12 * 12)")),
        sampled(final("<script>alert(1)</script> \\boxed{11}")),
        sampled(analysis("long " * 100), final("\\boxed{11}")),
        sampled(analysis("long " * 100), final("\\boxed{49}")),
    ]
    engine = ScriptedEngine(low + high)
    report = run_eval(engine, ["aime25"], ["low", "high"], out=tmp_path, sample_data=True)
    assert len(report.rows) == 2
    errors = browser.load(tmp_path / "report.html")
    assert errors == []
    assert browser.evaluate("document.querySelectorAll('#results tbody tr').length") == 2
    assert browser.evaluate("document.querySelector('#results').innerText").count("aime25") == 2
    points = browser.evaluate(
        "[...document.querySelectorAll('svg.plot circle.point')].map(c => "
        "[c.dataset.effort, c.getBoundingClientRect().width > 0])"
    )
    assert points == [["low", True], ["high", True]]
    # Higher effort spent more reasoning tokens: its point is further right.
    xs = browser.evaluate(
        "[...document.querySelectorAll('circle.point')].map(c => +c.getAttribute('cx'))"
    )
    assert xs[0] < xs[1]
    assert browser.evaluate("document.querySelectorAll('details.sample').length") == 6
    assert browser.evaluate("document.querySelectorAll('details.reasoning').length") >= 6
    assert browser.evaluate("document.querySelectorAll('details.reasoning[open]').length") == 0
    tool_text = browser.evaluate("document.querySelector('.tool').textContent")
    assert "python" in tool_text and "print(12 * 12)" in tool_text
    # A model's text is shown, never run.
    assert browser.evaluate("document.querySelectorAll('body script').length") == 0
    # Self-contained: nothing is fetched from anywhere.
    assert browser.evaluate("performance.getEntriesByType('resource').length") == 0
