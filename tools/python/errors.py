"""The one error the python sandbox raises to its caller (not to the model)."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The sandbox cannot be provided (no Docker engine, image build failed, kernel never
    started). The message says what to do next; the model is not the one to fix it."""
