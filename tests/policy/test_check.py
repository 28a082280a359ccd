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
