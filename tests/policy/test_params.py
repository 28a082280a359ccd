import json

import pytest
import yaml

from builders import REPO, make_params, params_document
from curation.errors import PolicyError
from curation.policy.params import load_params


def test_repository_params_load_with_regulation_defaults():
    params = load_params(REPO / "params.yaml")
    assert set(params.regions) == {"cn", "eu", "us"}
    cn = params.regions["cn"]
    assert (cn.redact.min_face_px, cn.redact.min_plate_px) == (32, 16)
    assert cn.retention.raw == 0 and cn.require.consent and cn.may_leave_region == ["metrics"]
    assert params.regions["eu"].retention.raw == 72
    assert params.regions["us"].bulk_gps_vehicles == 1000
    assert all(not region.face_embeddings for region in params.regions.values())


def _edit(tmp_path, change):
    document = params_document(tmp_path)
    change(document)
    return make_params(tmp_path, document)


def _set(path, value):
    def change(document):
        node = document
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return change


@pytest.mark.parametrize(
    "change, expected",
    [
        (_set("regions.cn.redact.min_fase_px", 32), "regions.cn.redact.min_fase_px: unknown key (did you mean 'min_face_px'?)"),
        (_set("regions.eu.dvc_remote", KeyError), "regions.eu.dvc_remote: required key is missing"),
        (_set("regions.cn.redact.method", "smudge"), "regions.cn.redact.method: Input should be 'blur', 'pixelate' or 'fill'"),
        (_set("regions.us.redact.min_face_px", -1), "regions.us.redact.min_face_px: Input should be greater than 0"),
        (_set("regions.cn.restricted_zones.action", "ignore"), "regions.cn.restricted_zones.action"),
        (_set("regoins", {}), "regoins: unknown key (did you mean 'regions'?)"),
        (_set("regions.cn.s3", {"key_env": "lower-case", "secret_env": "X"}), "regions.cn.s3.key_env"),
        (_set("regions.cn.store", "ftp://host/x"), "regions.cn.store: Value error, store must be a local path or s3://bucket/prefix"),
    ],
)
def test_bad_params_give_one_line_naming_file_and_key(tmp_path, change, expected):
    path = _edit(tmp_path, change)
    with pytest.raises(PolicyError) as error:
        load_params(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


@pytest.mark.parametrize("inner", ["data/cn", "data/cn/sub"])
def test_overlapping_stores_are_refused(tmp_path, inner):
    path = _edit(tmp_path, _set("regions.eu.store", str(tmp_path / inner)))
    with pytest.raises(PolicyError, match=r"regions.eu.store: .* overlaps regions.cn.store"):
        load_params(path)


def test_shared_dvc_remote_is_refused(tmp_path):
    path = _edit(tmp_path, _set("regions.us.dvc_remote", "eu"))
    with pytest.raises(PolicyError, match="regions.us.dvc_remote: 'eu' is also regions.eu.dvc_remote"):
        load_params(path)


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"type": "Feature"}), "expected a GeoJSON FeatureCollection"),
        (json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}]}),
         "is a Point, expected Polygon"),
        (json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}]}),
         "is invalid"),
        (json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 95], [1, 95], [1, 96], [0, 95]]]}}]}),
         "outside lon/lat range"),
    ],
)
def test_zone_file_that_is_not_geojson_is_refused(tmp_path, content, reason):
    zones = tmp_path / "zones.geojson"
    zones.write_text(content)
    path = _edit(tmp_path, _set("regions.eu.restricted_zones.file", str(zones)))
    with pytest.raises(PolicyError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{zones}: regions.eu.restricted_zones.file: not valid GeoJSON")
    assert reason in str(error.value)


def test_missing_and_malformed_yaml(tmp_path):
    with pytest.raises(PolicyError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("regions:\n  cn: [unclosed\n")
    with pytest.raises(PolicyError, match=r"params.yaml: line \d+: not valid YAML"):
        load_params(bad)


def test_relative_paths_resolve_against_the_params_folder(tmp_path):
    document = params_document(tmp_path, regions=("cn",))
    document["regions"]["cn"]["store"] = "stores/cn"
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "params.yaml"
    path.write_text(yaml.safe_dump(document))
    assert load_params(path).regions["cn"].store == str(tmp_path / "sub" / "stores" / "cn")


def _moved_checkout(folder):
    """The repository's params and polygon files at another path, stores elsewhere again."""
    import shutil

    shutil.copytree(REPO / "policy", folder / "policy")
    shutil.copy2(REPO / "params.yaml", folder / "params.yaml")
    return load_params(folder / "params.yaml")


def test_policy_version_is_the_rules_not_where_the_checkout_or_store_lies(tmp_path):
    here, there = _moved_checkout(tmp_path / "a"), _moved_checkout(tmp_path / "elsewhere" / "b")
    assert here.regions["cn"].store != there.regions["cn"].store
    assert {n: r.version for n, r in here.regions.items()} == {n: r.version for n, r in there.regions.items()}
    assert len({r.version for r in here.regions.values()}) == 3  # cn, eu and us have different rules
    zones = tmp_path / "elsewhere" / "b" / "policy" / "zones" / "cn.geojson"
    document = json.loads(zones.read_text())
    document["features"] = document["features"][1:]  # one restricted zone fewer
    zones.write_text(json.dumps(document))
    assert load_params(zones.parents[2] / "params.yaml").regions["cn"].version != here.regions["cn"].version
    document = yaml.safe_load((REPO / "params.yaml").read_text())
    document["regions"]["cn"]["redact"]["min_face_px"] = 24
    (tmp_path / "a" / "params.yaml").write_text(yaml.safe_dump(document))
    assert load_params(tmp_path / "a" / "params.yaml").regions["cn"].version != here.regions["cn"].version
