"""Store roots are compared after resolving links, when params load and again when a store opens."""

import os

import pytest

from builders import make_params, make_store, params_document
from curation.errors import PolicyError
from curation.policy.params import load_params
from curation.storage.store import RegionStore


def _load_with(tmp_path, **stores):
    document = params_document(tmp_path)
    for region, store in stores.items():
        document["regions"][region]["store"] = str(store)
    return load_params(make_params(tmp_path, document))


@pytest.mark.parametrize("how", ["absolute link", "link to a folder inside", "relative spelling", "link above"])
def test_aliased_or_nested_roots_are_refused_naming_both_regions(tmp_path, how):
    cn = tmp_path / "data" / "cn"
    (cn / "sub").mkdir(parents=True)
    if how == "absolute link":
        os.symlink(cn, tmp_path / "alias")
        eu = tmp_path / "alias"
    elif how == "link to a folder inside":
        os.symlink(cn / "sub", tmp_path / "alias")
        eu = tmp_path / "alias"
    elif how == "relative spelling":
        eu = "data/eu/../cn"
    else:  # eu's root is a link to a folder that holds cn's
        os.symlink(tmp_path / "data", tmp_path / "alias")
        eu = tmp_path / "alias"
    with pytest.raises(PolicyError) as error:
        _load_with(tmp_path, eu=eu)
    message = str(error.value)
    assert "regions.eu.store" in message and "regions.cn.store" in message and "overlaps" in message and "\n" not in message


def test_a_link_made_after_loading_is_seen_when_a_store_opens(tmp_path):
    params = _load_with(tmp_path, eu=tmp_path / "later")
    make_store(tmp_path, "cn").write_bytes("landing/x", b"cn")
    os.symlink(tmp_path / "data" / "cn", tmp_path / "later")
    with pytest.raises(PolicyError, match="regions.eu.store: .*later .*resolved.* overlaps regions.cn.store"):
        RegionStore(params, "eu")
    assert sorted(os.listdir(tmp_path / "data" / "cn")) == ["landing"]  # refused before anything was made


def test_roots_that_only_look_alike_are_fine(tmp_path):
    params = _load_with(tmp_path, cn=tmp_path / "data" / "cn", eu=tmp_path / "data" / "cn-eu", us=tmp_path / "data" / "c")
    for region in ("cn", "eu", "us"):
        RegionStore(params, region).write_bytes("x", region.encode())
    assert [RegionStore(params, r).read_bytes("x") for r in ("cn", "eu", "us")] == [b"cn", b"eu", b"us"]
