"""`oss-agent serve` as a user starts it: a process that serves, then stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import openai
from server_helpers import free_port


def test_serve_answers_the_official_client_and_stops_cleanly_on_sigterm(mini_checkpoint):
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from agent.cli import main; main()",
        "serve",
        "--model",
        str(mini_checkpoint),
        "--port",
        str(port),
        "--max-tokens",
        "8",
    ]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        deadline = time.monotonic() + 240
        while True:
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert [m.id for m in models] == ["gpt-oss-mini"]
        reply = client.completions.create(
            model="gpt-oss-mini", prompt=[200006, 1428], max_tokens=50
        )
        assert len(reply.choices[0].model_extra["token_ids"]) == 8  # --max-tokens caps a request
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal (the conventional exit status).
    assert code in (0, -signal.SIGTERM)
    log = server.stderr.read()
    assert "Application shutdown complete" in log and "Traceback" not in log
