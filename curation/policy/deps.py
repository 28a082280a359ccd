"""What a piece of code depends on, derived from the code itself: its import closure inside the
project and the data files it reads.

Stages' DVC dependencies and the stages' fingerprints both come from here, so that editing a
module a stage imports re-runs the stage, and a fingerprint changes when (and only when) the code
that decides the stage's output changes. Imports are read from the source (``ast``), not by
importing, and every import counts, also those inside functions: a lazy import is still code the
stage runs. Data files are named through :func:`curation._env.data_file` with a literal path,
which is what the scan looks for.

Example:
    >>> sorted(str(p) for p in closure(["pipelines.redact"]))[:2]      # doctest: +SKIP
    ['curation/__init__.py', 'curation/_env.py']
    >>> code_hash(["curation.redaction.video"], within=("curation/perception", "curation/redaction"))  # doctest: +SKIP
    '3f1c0e9a2b7d'
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from curation._env import PROJECT_ROOT

__all__ = ["closure", "data_files", "code_hash", "PACKAGES"]

PACKAGES = ("curation", "pipelines")  # the project's own top-level packages


def _module_path(name: str, root: Path) -> Path | None:
    """The file of a project module (``a.b`` -> a/b.py or a/b/__init__.py), relative to root."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (root / candidate).is_file():
            return candidate
    return None


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _package_of(path: Path) -> str:
    parts = path.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts[:-1])


def _imports(path: Path, root: Path) -> set[str]:
    """Every module name a file imports (absolute, relative resolved; ``from a import b`` gives a and a.b)."""
    names: set[str] = set()
    package = _package_of(path)
    for node in ast.walk(_parse(root / path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def closure(roots: list[str], root: Path = PROJECT_ROOT) -> set[Path]:
    """Project files (relative to ``root``) that the given modules import, directly or not,
    including each module's parent packages (their ``__init__`` runs on import)."""
    seen: set[Path] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            path = _module_path(".".join(parts[:depth]), root)
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(_imports(path, root))
    return seen


def data_files(modules: set[Path], root: Path = PROJECT_ROOT) -> set[Path]:
    """Files the modules name with ``data_file("<path>")`` (paths relative to the project root)."""
    found = set()
    for path in modules:
        for node in ast.walk(_parse(root / path)):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "data_file"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.add(Path(node.args[0].value))
    return found


def code_hash(roots: list[str], within: tuple[str, ...], root: Path = PROJECT_ROOT) -> str:
    """Hash of the source of the roots' import closure, limited to files under ``within`` (and the
    data files those read): a change anywhere else (storage, audit, the CLI) does not change it."""
    files = {p for p in closure(roots, root) if any(p.is_relative_to(w) for w in within)}
    files |= data_files(files, root)
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path.as_posix()}\0".encode())
        digest.update((root / path).read_bytes())
    return digest.hexdigest()[:12]
