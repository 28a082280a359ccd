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
    return subprocess.run([sys.executable, "-m", "curation.cli", *args], cwd=cwd, capture_output=True, text=True)


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
    (root / "dvc.yaml").write_text(dvc.replace("        - models/plates.pt\n", "", 1).replace("        - policy/zones/${key}.geojson\n", "", 1))
    violations = [str(v) for v in check_pipeline(load_params(root / "params.yaml"), root / "dvc.yaml")]
    assert "redact: models/plates.pt: not in the stage's deps (named by params redaction); add it to dvc.yaml" in violations
    assert "ingest: policy/zones/cn.geojson: not in the stage's deps (named by params regions.cn); add it to dvc.yaml" in violations
