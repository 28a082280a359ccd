import os
import shutil
import subprocess
import sys

import pytest
import yaml

from builders import REPO, make_params
from curation.policy.check import check_pipeline
from curation.policy.params import load_params

GOOD = {
    "stages": {
        "ingest": {
            "foreach": "${regions}",
            "do": {
                "cmd": "python -m pipelines.ingest ${key}",
                "deps": ["${item.store}/landing"],
                "outs": [{"${item.store}/catalog": {"remote": "${item.dvc_remote}"}}],
                "metrics": [{"metrics/${key}/ingest.json": {"cache": False}}],
            },
        },
        "report": {"cmd": "curation report", "deps": ["metrics"], "outs": ["reports/summary.md"]},
    }
}


def _check(tmp_path, dvc):
    params = load_params(make_params(tmp_path))
    # The stores in the test params are absolute; dvc.yaml refers to them through ${item.store}.
    path = tmp_path / "dvc.yaml"
    path.write_text(yaml.safe_dump(dvc))
    return [str(v) for v in check_pipeline(params, path)]


def test_clean_pipeline_has_no_violations(tmp_path):
    assert _check(tmp_path, GOOD) == []


def _stage(**do):
    return {"stages": {"label": {"foreach": "${regions}", "do": {"cmd": "x", **do}}}}


@pytest.mark.parametrize(
    "dvc, expected",
    [
        (_stage(outs=["${item.store}/labels"]), "label@cn: {cn}/labels: in region cn's store but remote is not set; expected remote: cn"),
        (_stage(outs=[{"${item.store}/labels": {"remote": "eu"}}]), "label@cn: {cn}/labels: in region cn's store but remote is eu; expected remote: cn"),
        (_stage(outs=[{"models/${key}": {"remote": "${item.dvc_remote}"}}]), "label@cn: models/cn: declares region cn's remote cn but lies outside that region's store"),
        ({"stages": {"mix": {"cmd": "x", "deps": ["{cn}/catalog"], "outs": [{"{eu}/catalog": {"remote": "eu"}}]}}},
         "mix: {eu}/catalog: stage touches the stores of regions cn and eu; a stage must stay inside one region"),
        ({"stages": {"plot": {"cmd": "x", "plots": ["{us}/plots/pr.csv"]}}}, "plot: {us}/plots/pr.csv: in region us's store but remote is not set"),
    ],
)
def test_each_violation_is_one_line_with_stage_path_and_expected_remote(tmp_path, dvc, expected):
    stores = {r: str(tmp_path / "data" / r) for r in ("cn", "eu", "us")}
    dvc = yaml.safe_load(yaml.safe_dump(dvc).replace("{cn}", stores["cn"]).replace("{eu}", stores["eu"]).replace("{us}", stores["us"]))
    violations = _check(tmp_path, dvc)
    assert expected.format(**stores) in "\n".join(violations)


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's code, not whichever is installed
    return subprocess.run([sys.executable, "-m", "curation.cli", *args], cwd=cwd, capture_output=True, text=True, env=env)


def test_cli_policy_check_exit_codes(tmp_path):
    make_params(tmp_path)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(_stage(outs=["${item.store}/labels"])))
    result = _cli("policy", "check", cwd=tmp_path)
    assert result.returncode == 1 and len(result.stdout.strip().splitlines()) == 3  # one per region
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(GOOD))
    assert _cli("policy", "check", cwd=tmp_path).returncode == 0
    (tmp_path / "params.yaml").write_text("regions:\n  cn:\n    stor: x\n")
    result = _cli("policy", "check", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "params.yaml: regions.cn" in result.stderr


def test_repository_pipeline_is_clean():
    result = _cli("policy", "check", cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def _project_copy(tmp_path):
    """The repository's code, pipeline and params in a temporary folder (the check reads code there)."""
    root = tmp_path / "project"
    for name in ("curation", "pipelines", "policy", "models"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(REPO / name, root / name)
    (root / ".cache" / "faces").mkdir(parents=True)
    (root / ".cache" / "faces" / "bank-v1.npz").write_bytes(b"")
    return root


def test_a_new_import_or_data_file_of_a_stage_is_named_until_dvc_yaml_lists_it(tmp_path):
    root = _project_copy(tmp_path)
    assert check_pipeline(load_params(root / "params.yaml"), root / "dvc.yaml") == []
    curate = root / "curation" / "datasets" / "curate.py"
    curate.write_text(curate.read_text().replace("import numpy as np\n", "import numpy as np\n\nfrom curation.perception import lanes  # noqa\n", 1))
    frames = root / "curation" / "datasets" / "frames.py"
    frames.write_text(frames.read_text() + '\nSTOPWORDS = data_file("curation/datasets/stopwords.txt")\n')
    (root / "curation" / "datasets" / "stopwords.txt").write_text("a\n")
    violations = [str(v) for v in check_pipeline(load_params(root / "params.yaml"), root / "dvc.yaml")]
    # lanes.py and what it imports, reached through curate.py; the data file through frames.py (curate and export import it).
    assert "curate: curation/perception/lanes.py: not in the stage's deps (imported by pipelines.curate); add it to dvc.yaml" in violations
    assert "curate: curation/datasets/stopwords.txt: not in the stage's deps (read by the stage's code); add it to dvc.yaml" in violations
    assert "export: curation/datasets/stopwords.txt: not in the stage's deps (read by the stage's code); add it to dvc.yaml" in violations
    assert not any(v.startswith(("ingest:", "redact:", "label:", "train:", "simulate:")) for v in violations)


def test_a_file_named_by_a_stage_s_params_must_be_a_dep(tmp_path):
    root = _project_copy(tmp_path)
    dvc = (root / "dvc.yaml").read_text()
    (root / "dvc.yaml").write_text(dvc.replace("        - models/labeler.pt\n", "", 1).replace("        - policy/zones/${key}.geojson\n", "", 1))
    violations = [str(v) for v in check_pipeline(load_params(root / "params.yaml"), root / "dvc.yaml")]
    assert "label: models/labeler.pt: not in the stage's deps (named by params label); add it to dvc.yaml" in violations
    assert "ingest: policy/zones/cn.geojson: not in the stage's deps (named by params regions.cn); add it to dvc.yaml" in violations


def _dvc_project(tmp_path, config=""):
    """Params, the GOOD pipeline and a .dvc/config: a project whose caches the check reads."""
    params = load_params(make_params(tmp_path))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / ".dvc").mkdir(exist_ok=True)
    (tmp_path / ".dvc" / "config").write_text(config)
    return params


def test_region_outputs_cached_outside_their_own_store_are_violations(tmp_path):
    params = _dvc_project(tmp_path, '[cache]\n    type = "reflink,copy"\n')
    assert check_pipeline(params, tmp_path / "dvc.yaml") == []  # curation dvc puts each region's cache in its store
    (tmp_path / ".dvc" / "config").write_text(f"[cache]\n    dir = {tmp_path / 'shared-cache'}\n")
    violations = [str(v) for v in check_pipeline(params, tmp_path / "dvc.yaml")]
    assert len(violations) == 3 and all(v.startswith("dvc cache: .dvc/config: cache.dir") and "in no region's store" in v for v in violations)
    # A cache inside cn's store is cn's only: eu's and us's outputs would land in it.
    (tmp_path / ".dvc" / "config").write_text("")
    (tmp_path / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {tmp_path / 'data' / 'cn' / 'dvc' / 'cache'}\n")
    violations = [str(v) for v in check_pipeline(params, tmp_path / "dvc.yaml")]
    assert [v.split("region ")[1].split("'")[0] for v in violations] == ["eu", "us"]
    assert all("in region cn's store" in v and v.startswith("dvc cache: .dvc/config.local") for v in violations)


@pytest.mark.parametrize("kinds", ["hardlink", "symlink,copy", "reflink,hardlink"])
def test_a_linking_cache_type_is_a_violation(tmp_path, kinds):
    params = _dvc_project(tmp_path, f'[cache]\n    type = "{kinds}"\n')
    (violation,) = [str(v) for v in check_pipeline(params, tmp_path / "dvc.yaml")]
    assert f"{kinds}: the store guard refuses files with two names and links" in violation


def test_objects_in_the_repository_default_cache_are_a_violation(tmp_path):
    params = _dvc_project(tmp_path)
    stray = tmp_path / ".dvc" / "cache" / "files" / "md5" / "ab" / ("c" * 30)
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"a region's output, cached by a plain dvc pull")
    (violation,) = [str(v) for v in check_pipeline(params, tmp_path / "dvc.yaml")]
    assert violation.startswith("dvc cache: .dvc/cache: 1 files outside every store")


def test_a_stage_run_by_dvc_with_a_cache_outside_its_store_stops(tmp_path, monkeypatch):
    from curation.errors import PolicyError
    from curation.policy.caches import dvc_environment, refuse_foreign_cache
    from curation.storage.store import RegionStore

    params = _dvc_project(tmp_path)
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "no-global-config"))
    with pytest.raises(PolicyError, match=r"region cn: DVC would cache this stage's outputs in .*\.dvc/cache \(the default\)"):
        refuse_foreign_cache(params, "cn", tmp_path)
    for name, value in dvc_environment(RegionStore(params, "cn")).items():
        monkeypatch.setenv(name, value)
    refuse_foreign_cache(params, "cn", tmp_path)
    with pytest.raises(PolicyError, match="curation dvc --region eu"):  # cn's cache for an eu stage
        refuse_foreign_cache(params, "eu", tmp_path)


def test_curation_dvc_acts_on_one_region_only(tmp_path):
    from curation.errors import PolicyError
    from curation.policy.check import region_targets

    params = _dvc_project(tmp_path)
    dvc = tmp_path / "dvc.yaml"
    assert region_targets(params, "cn", ["repro"], dvc) == ["repro", "ingest@cn"]
    assert region_targets(params, "eu", ["push", "-r", "eu"], dvc) == ["push", "-r", "eu", "ingest@eu"]
    assert region_targets(params, "cn", ["checkout", "-f", "dvc.yaml:ingest@cn", str(tmp_path / "data/cn/catalog")], dvc)[-1].endswith("catalog")
    assert region_targets(params, "cn", ["dag"], dvc) == ["dag"] and region_targets(params, "cn", ["push", "--help"], dvc) == ["push", "--help"]
    for args in (["pull", "ingest@eu"], ["repro", "report"], ["pull", "--glob", "ingest@*"], ["pull", str(tmp_path / "data/us/catalog")]):
        with pytest.raises(PolicyError, match="is not one of region cn's stages or paths"):
            region_targets(params, "cn", args, dvc)
