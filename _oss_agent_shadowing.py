"""Stop at import when a user's own module hides one of this distribution's packages.

oss-agent's packages have common names (agent, runtime, tools, evals), and Python searches the
folder of the script it runs before the installed packages. A `tools.py` beside a user's
script is then imported instead of our `tools` package, and the failure shows up far away
("No module named 'tools.base'; 'tools' is not a package"). Each package imports this module
first, so the error names the file and says what to rename.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

PACKAGES = ("agent", "runtime", "tools", "evals")
_HOME = Path(__file__).resolve().parent


def shadowing_files() -> dict[str, Path]:
    """Each of our package names that Python resolves to some other file, and that file."""
    found: dict[str, Path] = {}
    for name in PACKAGES:
        module = sys.modules.get(name)
        try:
            spec = module.__spec__ if module is not None else importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        origin = getattr(spec, "origin", None)
        if origin is None or origin in ("built-in", "frozen"):
            continue
        if Path(origin).resolve() != _HOME / name / "__init__.py":
            found[name] = Path(origin)
    return found


def check() -> None:
    """Raise ImportError naming every file that shadows one of our packages."""
    problems = [
        f"{path} hides oss-agent's `{name}` package (in {_HOME / name}): Python imports "
        f"modules from the folder of the script it runs before installed packages, so "
        f"`import {name}` finds your file. Rename it (for example to my_{name}"
        f"{'.py' if path.suffix == '.py' else ''}), update your imports of it, and delete "
        f"the {path.parent / '__pycache__'} folder if there is one."
        for name, path in shadowing_files().items()
    ]
    if problems:
        raise ImportError("\n".join(problems))


check()
