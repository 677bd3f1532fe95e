"""Sandboxed fetching: each hop runs in a short-lived container of the sandbox image.

The host still does everything that decides safety (the egress guard, the address pinning,
redirects, limits) and all parsing; the container only opens the connection to the checked
address and hands back status, headers and at most `max_bytes` of body. The container is
read-only, runs as nobody with every capability dropped, and has only network egress.

    fetcher = Fetcher(hop=DockerHop(docker.from_env()))
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

import httpx

from tools.browser.fetch import USER_AGENT, BodyWanted, FetchError, TooLarge
from tools.browser.page import RawResponse
from tools.python.errors import SandboxError

# Runs with the image's python3 (stdlib only): one GET to the pinned address, no redirects,
# the Host header and TLS SNI/certificate check for the URL's host name.
_SCRIPT = r"""
import base64, http.client, json, socket, ssl, sys
a = json.loads(sys.argv[1])
def connect(self):
    sock = socket.create_connection((a["ip"], a["port"]), a["timeout"])
    if a["scheme"] == "https":
        sock = ssl.create_default_context().wrap_socket(sock, server_hostname=a["host"])
    self.sock = sock
cls = http.client.HTTPSConnection if a["scheme"] == "https" else http.client.HTTPConnection
conn = type("Pinned", (cls,), {"connect": connect})(a["host"], a["port"], timeout=a["timeout"])
try:
    conn.request("GET", a["path"], headers=a["headers"])
    r = conn.getresponse()
    body = r.read(a["max_bytes"] + 1) if 200 <= r.status < 300 else b""
    out = {"status": r.status, "headers": r.getheaders(),
           "body": base64.b64encode(body[: a["max_bytes"]]).decode(),
           "too_large": len(body) > a["max_bytes"]}
except socket.timeout as e:
    out = {"error": "timeout", "detail": str(e)}
except (OSError, http.client.HTTPException) as e:
    out = {"error": type(e).__name__, "detail": str(e)}
print(json.dumps(out))
"""


class DockerHop:
    """A fetch hop inside a throwaway container (see the module docstring).

    `image` defaults to the python tool's sandbox image (built on first use). Use
    `network_mode="host"` only to reach servers on the host's loopback, as tests do.
    """

    def __init__(
        self,
        client: Any,
        image: str | None = None,
        *,
        network_mode: str = "bridge",
        startup_allowance: float = 20.0,
    ) -> None:
        self.client = client
        self.image = image
        self.network_mode = network_mode
        self.startup_allowance = startup_allowance

    async def __call__(
        self, url: httpx.URL, ip: str, *, timeout: float, max_bytes: int, wants_body: BodyWanted
    ) -> RawResponse:
        # `wants_body` is not consulted: the container reads any 2xx body (within the limit)
        # and the host discards what it cannot render.
        args = {
            "scheme": url.scheme,
            "host": url.raw_host.decode("ascii"),
            "port": url.port or (443 if url.scheme == "https" else 80),
            "ip": ip,
            "path": url.raw_path.decode("ascii"),
            "headers": {"User-Agent": USER_AGENT, "Accept": "*/*"},
            "timeout": timeout,
            "max_bytes": max_bytes,
        }
        out = await asyncio.to_thread(self._run, json.dumps(args), timeout)
        if "error" in out:
            if out["error"] == "timeout":
                raise TimeoutError(out["detail"])
            raise FetchError(f"could not fetch {url} ({out['error']}: {out['detail']}).")
        if out["too_large"]:
            raise TooLarge(f"{url} is larger than the {max_bytes}-byte limit; stopped reading.")
        headers = {name.lower(): value for name, value in out["headers"]}
        body = base64.b64decode(out["body"])
        return RawResponse(url=str(url), status=out["status"], headers=headers, content=body)

    def _run(self, args: str, timeout: float) -> dict[str, Any]:
        from docker.errors import DockerException
        from requests.exceptions import RequestException

        try:
            image = self.image or self._default_image()
            container = self._start(image, args)
        except (DockerException, RequestException, SandboxError) as exc:
            raise FetchError(
                f"the fetch sandbox could not start ({exc}); the operator should check the "
                "Docker engine. Try again later."
            ) from exc
        try:
            try:
                container.wait(timeout=timeout + self.startup_allowance)
            except RequestException as exc:
                raise TimeoutError(f"the fetch container ran past {timeout:g} s") from exc
            stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
            stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        except DockerException as exc:  # removed or failed under us
            raise FetchError(f"the fetch sandbox failed ({exc}); try again.") from exc
        finally:
            with contextlib.suppress(DockerException, RequestException):
                container.remove(force=True)
        try:
            return json.loads(stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError) as exc:
            detail = stderr.strip()[-500:] or "no output"
            raise FetchError(f"the fetch container failed ({detail}).") from exc

    def _start(self, image: str, args: str) -> Any:
        from tools.python.docker_backend import owner_labels

        return self.client.containers.run(
            image,
            ["python3", "-c", _SCRIPT, args],
            detach=True,
            network_mode=self.network_mode,
            read_only=True,
            user="65534:65534",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="256m",
            pids_limit=32,
            # Owner labels: removed by `remove_stale` if this process dies mid-fetch.
            labels={**owner_labels(), "oss-agent.role": "browser-fetch"},
        )

    def _default_image(self) -> str:
        from tools.python.image import ensure_image

        self.image = ensure_image(self.client)
        return self.image
