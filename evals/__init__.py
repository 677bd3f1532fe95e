"""Reasoning benchmarks scored across low / medium / high effort."""

import _oss_agent_shadowing  # noqa: F401  (a user's own tools.py etc. must not hide our packages)
