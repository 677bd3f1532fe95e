"""`oss-agent serve`: the OpenAI-compatible server for a local model (or a remote engine)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer


def serve(
    model: Annotated[str, typer.Option("--model", "-m", help="Checkpoint folder (or URL).")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    tools: Annotated[
        str, typer.Option(help="Builtin tools requests may use, comma separated: browser,python.")
    ] = "",
    api_key: Annotated[
        str | None,
        typer.Option(envvar="OSS_AGENT_API_KEY", help="Bearer key clients must send."),
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Sequences decoded together.")] = 16,
    max_in_flight: Annotated[
        int, typer.Option(help="Requests running or waiting; more are answered 429.")
    ] = 64,
    max_tokens: Annotated[int, typer.Option(help="Most tokens sampled in one model turn.")] = 4096,
    store_dir: Annotated[
        str | None, typer.Option(help="Keep responses here too (previous_response_id).")
    ] = None,
    store_size: Annotated[int, typer.Option(help="Responses kept.")] = 1024,
    name: Annotated[
        str | None, typer.Option(help="The model name clients use (default: the folder's).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    dtype: Annotated[
        str,
        typer.Option(help="bfloat16, or float32 (faster on CPUs without bf16 matrix units)."),
    ] = "bfloat16",
) -> None:
    """Serve /v1/responses, /v1/chat/completions and /v1/completions with batched decoding."""
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    if not _is_loopback(host) and not api_key:
        err.print(
            f"refusing to listen on {host} without an API key: pass --api-key (or set "
            "OSS_AGENT_API_KEY), or bind 127.0.0.1",
            style="red",
            markup=False,
        )
        raise typer.Exit(2)
    import uvicorn

    from agent.config import ConfigError, load_settings, make_tools
    from agent.server.app import create_app
    from agent.server.session import Limits
    from agent.server.store import ResponseStore

    names = [n.strip() for n in tools.split(",") if n.strip()]
    try:
        unknown = sorted(set(names) - {"browser", "python"})
        if unknown:
            raise ConfigError(f"unknown tool {unknown[0]!r}: choose from python, browser")
        settings = load_settings({})
        engine = _engine(model, device, dtype, max_batch)
    except (ConfigError, ValueError, RuntimeError, OSError) as exc:
        err.print(str(exc), style="red", markup=False)
        raise typer.Exit(2) from None
    app = create_app(
        engine,
        model_name=name or _model_name(model),
        tool_factory=lambda requested: make_tools(list(requested), settings),
        builtin_tools=names,
        api_key=api_key,
        limits=Limits(max_tokens=max_tokens, max_in_flight=max_in_flight),
        store=ResponseStore(store_size, store_dir),
    )
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=30, log_level="info")


def _engine(model: str, device: str, dtype: str, max_batch: int):
    if model.startswith(("http://", "https://")):
        from runtime.remote import connect

        return connect(model)
    import torch

    from runtime import load_model
    from runtime.batch import BatchedEngine

    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"unknown --dtype {dtype!r}: use bfloat16 or float32")
    loaded = load_model(model, device=device, dtype=getattr(torch, dtype), compile=False)
    return BatchedEngine(loaded, max_batch=max_batch)


def _model_name(model: str) -> str:
    """`gpt-oss-20b/original` -> `gpt-oss-20b`; a folder's own name otherwise."""
    path = Path(model.rstrip("/"))
    return (path.parent.name if path.name == "original" else path.name) or model


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
