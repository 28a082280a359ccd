"""Static residency check of a DVC pipeline against params.yaml.

Reads dvc.yaml, expands ``foreach`` stages and ``${...}`` references the way DVC does for the
forms this project uses, then checks three rules:

* every out under a region's store declares ``remote:`` equal to that region's ``dvc_remote``
  (and an out that declares a region's remote lies in that region's store);
* no stage reads or writes the stores of two regions;
* a region's cached outs are cached inside its store, never in a cache of the repository
  (curation.policy.caches: no ``cache.dir`` in .dvc/config, no linking cache type, an empty .dvc/cache);

and that each stage's deps are complete: every project module its ``python -m pipelines.<stage>``
command imports (the closure from curation.policy.deps), every data file that code reads, and
every project file its params name (model weights, zone and boundary files) is listed, or lies in
a listed folder.

Example:
    >>> violations = check_pipeline(load_params("params.yaml"), "dvc.yaml")   # doctest: +SKIP
    >>> violations
    []
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from curation.errors import PolicyError
from curation.policy.caches import cache_violations
from curation.policy.deps import closure, data_files
from curation.policy.params import Params, store_holding

__all__ = ["Violation", "check_pipeline", "expand_stages", "region_targets"]

_REFERENCE = re.compile(r"\$\{\s*([^}]+?)\s*\}")
_MODULE = re.compile(r"\bpython3?\s+-m\s+([\w.]+)")


@dataclass(frozen=True)
class Violation:
    stage: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.path}: {self.problem}"


def _lookup(context: dict, dotted: str, where: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise PolicyError(f"{where}: cannot resolve ${{{dotted}}}")
    return value


def _interpolate(value: Any, context: dict, where: str) -> Any:
    if isinstance(value, str):
        whole = _REFERENCE.fullmatch(value)
        if whole:  # "${regions}" keeps its type (a dict to iterate over)
            return _lookup(context, whole.group(1), where)
        return _REFERENCE.sub(lambda m: str(_lookup(context, m.group(1), where)), value)
    if isinstance(value, dict):
        return {_interpolate(k, context, where): _interpolate(v, context, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, context, where) for v in value]
    return value


def expand_stages(dvc: dict, params_document: dict, source: str) -> dict[str, dict]:
    """Stage name (``name@key`` for foreach) -> stage body with every reference resolved."""
    context = dict(params_document)
    for entry in dvc.get("vars") or []:
        if isinstance(entry, dict):
            context.update(entry)
    stages = {}
    for name, body in (dvc.get("stages") or {}).items():
        where = f"{source}: stages.{name}"
        if not isinstance(body, dict):
            raise PolicyError(f"{where}: expected a mapping")
        if "foreach" not in body:
            stages[name] = _interpolate(body, context, where)
            continue
        items = _interpolate(body["foreach"], context, where)
        pairs = items.items() if isinstance(items, dict) else ((str(i), i) for i in items)
        for key, item in pairs:
            stages[f"{name}@{key}"] = _interpolate(body.get("do") or {}, {**context, "key": key, "item": item}, where)
    return stages


def _entries(stage: dict, section: str) -> list[tuple[str, dict]]:
    """(path, options) for each entry of outs/metrics/plots/deps, whatever form it was written in."""
    result = []
    for entry in stage.get(section) or []:
        if isinstance(entry, str):
            result.append((entry, {}))
        elif isinstance(entry, dict):
            result.extend((path, options or {}) for path, options in entry.items())
    return result


def _region_of(path: Path, stores: dict[str, Path]) -> str | None:
    for name, store in stores.items():
        if path == store or path.is_relative_to(store):
            return name
    return None


def check_pipeline(params: Params, dvc_path: str | Path) -> list[Violation]:
    """All residency violations of a dvc.yaml, one per offending path."""
    dvc_path = Path(dvc_path)
    try:
        dvc = yaml.safe_load(dvc_path.read_text()) or {}
        params_document = yaml.safe_load(Path(params.source).read_text()) or {}
    except FileNotFoundError as error:
        raise PolicyError(f"{error.filename}: file not found") from None
    except yaml.YAMLError as error:
        raise PolicyError(f"{dvc_path}: not valid YAML ({error})") from None
    stores = {n: Path(r.store) for n, r in params.regions.items() if not r.is_s3}
    remotes = {r.dvc_remote: n for n, r in params.regions.items()}
    violations, cached = [], set()
    for name, stage in expand_stages(dvc, params_document, str(dvc_path)).items():
        base = (dvc_path.parent / stage.get("wdir", ".")).resolve()
        touched: dict[str, str] = {}  # region -> first path of it this stage touches
        for section in ("outs", "metrics", "plots"):
            for out, options in _entries(stage, section):
                region = _region_of((base / out).resolve(), stores)
                remote = options.get("remote")
                if region is not None:
                    touched.setdefault(region, out)
                    if options.get("cache", True):
                        cached.add(region)
                    expected = params.regions[region].dvc_remote
                    if remote != expected:
                        violations.append(Violation(name, out, f"in region {region}'s store but remote is "
                                                    f"{remote or 'not set'}; expected remote: {expected}"))
                elif remote in remotes:
                    violations.append(Violation(name, out, f"declares region {remotes[remote]}'s remote "
                                                f"{remote} but lies outside that region's store"))
        for dep, _ in _entries(stage, "deps"):
            region = _region_of((base / dep).resolve(), stores)
            if region is not None:
                touched.setdefault(region, dep)
        if len(touched) > 1:
            first, *others = sorted(touched)
            for other in others:
                violations.append(Violation(name, touched[other], f"stage touches the stores of regions {first} "
                                            f"and {other}; a stage must stay inside one region"))
        for missing, why in _missing_deps(stage, base, params_document):
            violation = Violation(name.split("@")[0], missing, f"not in the stage's deps ({why}); add it to dvc.yaml")
            if violation not in violations:  # once per stage, not once per region
                violations.append(violation)
    if (dvc_path.parent / ".dvc").is_dir():
        violations += [Violation("dvc cache", path, problem) for path, problem in cache_violations(params, dvc_path.parent, cached)]
    return violations


def _params_files(value: Any, base: Path) -> Iterator[Path]:
    """Project files a params subtree names (weights, zone files): strings that are existing paths."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _params_files(item, base)
    elif isinstance(value, list):
        for item in value:
            yield from _params_files(item, base)
    elif isinstance(value, str) and "/" in value and "://" not in value:
        path = (base / value).resolve()
        if path.is_file() and path.is_relative_to(base):
            yield path.relative_to(base)


def _missing_deps(stage: dict, base: Path, params_document: dict) -> list[tuple[str, str]]:
    """(path, why it is needed) for each project file the stage's command needs that no dep covers."""
    command = _MODULE.search(str(stage.get("cmd", "")))
    if not command:
        return []
    listed = [Path(dep) for dep, _ in _entries(stage, "deps")]
    needed: dict[Path, str] = {}
    modules = closure([command.group(1)], base)
    for path in sorted(modules):
        needed.setdefault(path, f"imported by {command.group(1)}")
    for path in sorted(data_files(modules, base)):
        needed.setdefault(path, "read by the stage's code")
    for entry, _ in _entries(stage, "params"):
        try:
            subtree = _lookup(params_document, entry, "params")
        except PolicyError:
            continue
        for path in _params_files(subtree, base):
            needed.setdefault(path, f"named by params {entry}")
    def covered(path: Path) -> bool:
        return any(path == dep or path.is_relative_to(dep) for dep in listed)

    return [(str(path), why) for path, why in needed.items() if not covered(path) and not _only_docstring(base / path)]


def _only_docstring(path: Path) -> bool:
    """A package __init__ holding a docstring alone runs no code: it need not be listed."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


SCOPED = ("repro", "push", "pull", "fetch", "status", "checkout", "commit")  # DVC commands that take stages or outs as targets


def region_targets(params: Params, region: str, args: list[str], dvc_path: str | Path = "dvc.yaml") -> list[str]:
    """``dvc`` arguments for region ``region`` alone (`curation dvc`): its stages as the targets of a command
    that names none; a target of another region (a stage, a glob, a path in its store) is refused."""
    from dvc.cli import parse_args

    params.region(region)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            namespace = parse_args(args)
    except SystemExit:  # --help, or DVC's own usage error: dvc prints it
        return args
    targets = getattr(namespace, "targets", None)
    if getattr(namespace, "cmd", None) not in SCOPED or targets is None:
        return args
    dvc = yaml.safe_load(Path(dvc_path).read_text()) or {}
    stages = sorted(n for n in expand_stages(dvc, yaml.safe_load(Path(params.source).read_text()), str(dvc_path)) if n.endswith(f"@{region}"))
    if not targets:
        return args + stages
    everything = expand_stages(dvc, yaml.safe_load(Path(params.source).read_text()), str(dvc_path))
    for target in targets:
        name = target.rsplit(":", 1)[-1]
        if getattr(namespace, "glob", False):
            matched = fnmatch.filter(everything, name)
            ours = bool(matched) and set(matched) <= set(stages)
        else:
            ours = name in stages or (name not in everything and store_holding(params, target) == region)
        if not ours:
            raise PolicyError(f"curation dvc --region {region}: target {target!r} is not one of region {region}'s stages or paths; "
                              "run it with that region's --region (README: Caches in their region)")
    return args
