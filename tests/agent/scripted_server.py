"""A real HTTP server on loopback that speaks the OpenAI completions API (as vLLM does, token
ids included) and answers with a `ScriptedEngine`'s turns: `oss-agent` run as a subprocess
reaches it with `--model http://127.0.0.1:PORT`, through the real remote engine."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scripted_engine import ScriptedEngine


class ScriptedServer:
    """Serves `engine`'s scripted turns; `fail_first` requests get HTTP 503 first."""

    def __init__(self, engine: ScriptedEngine, fail_first: int = 0) -> None:
        self.engine = engine
        self.fail_first = fail_first
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if server.fail_first > 0:
                    server.fail_first -= 1
                    self.send_response(503)
                    self.end_headers()
                    self.wfile.write(b"loading model")
                    return
                tokens = server.engine.generate(
                    body["prompt"],
                    max_tokens=body["max_tokens"],
                    stop_tokens=body.get("stop_token_ids", ()),
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for token in tokens:
                    chunk = {"choices": [{"index": 0, "text": "", "token_ids": [token]}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,))
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()
