"""Per-region keys live outside every store: made on first use (audited), read from the environment or a
key file named in params, refused inside a store, and the old in-store layout stops the platform."""

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from builders import make_params, make_store, params_document
from curation.errors import AuditError, PolicyError
from curation.policy.params import load_params
from curation.sources.ingest import pseudonym_key as ingest_pseudonym_key
from curation.storage import keys
from curation.storage.store import RegionStore


def _bytes_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink())


def test_keys_are_made_once_outside_the_store_and_their_creation_is_audited(tmp_path):
    store = make_store(tmp_path, "cn")
    secret = keys.pseudonym_key(store)
    assert ingest_pseudonym_key(store) == secret == keys.pseudonym_key(make_store(tmp_path, "cn"))
    folder = tmp_path / "keys" / "cn"
    assert sorted(p.name for p in folder.iterdir()) == ["audit.head", "audit.head.lock", "audit.key", "pseudonym.key"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE((folder / name).stat().st_mode) == 0o600 for name in ("audit.key", "pseudonym.key", "audit.head"))
    created = [r for r in store.audit.records() if r["action"] == "create_key"]
    assert [r["detail"]["key"] for r in created] == ["audit", "pseudonym"]
    assert created[1]["detail"]["key_id"] == keys.key_id(secret)
    audit_key = bytes.fromhex((folder / "audit.key").read_text())
    stored = _bytes_under(tmp_path / "data")
    for key in (secret, audit_key):
        assert key not in stored and key.hex().encode() not in stored
    assert store.audit.verify() == 2


def test_a_key_from_the_environment_wins_and_bad_keys_are_one_line(tmp_path, monkeypatch):
    store = make_store(tmp_path, "cn")
    key = os.urandom(32)
    monkeypatch.setenv("CURATION_CN_PSEUDONYM_KEY", key.hex())
    assert keys.pseudonym_key(store) == key and not (tmp_path / "keys" / "cn" / "pseudonym.key").exists()
    for value, message in (("not hex", "is not hexadecimal"), ("abcd", "has 2 bytes, needs at least 32"), (" , ", "no pseudonym key")):
        monkeypatch.setenv("CURATION_CN_PSEUDONYM_KEY", value)
        with pytest.raises(PolicyError, match=message) as error:
            keys.pseudonym_key(store)
        assert "\n" not in str(error.value) and "environment variable CURATION_CN_PSEUDONYM_KEY" in str(error.value)


def _edit(tmp_path, change):
    document = params_document(tmp_path)
    change(document)
    return make_params(tmp_path, document)


@pytest.mark.parametrize(
    "keys_block, message",
    [
        ({"pseudonym": {"file": "data/cn/keys/p.key"}}, "regions.cn.keys.pseudonym.file: .* lies inside the store of region 'cn'"),
        ({"pseudonym": {"file": "data/eu/p.key"}}, "lies inside the store of region 'eu'"),
        ({"audit": {"file": "k/a.key", "anchor": "data/cn/audit.head"}}, "regions.cn.keys.audit.anchor: .* lies inside"),
        ({"audit": {"file": "keys/cn/audit.key", "anchor": "keys/cn/audit.key"}}, "audit.anchor: .* is also regions.cn.keys.audit.file"),
        ({"pseudonym": {"file": "keys/eu/pseudonym.key"}}, "is also regions.cn.keys.pseudonym.file"),
        ({"pseudonym": {"env": "CURATION_EU_PSEUDONYM_KEY"}}, "CURATION_EU_PSEUDONYM_KEY is also regions"),
        ({"pseudonym": {"env": "lower_case"}}, "regions.cn.keys.pseudonym.env: String should match pattern"),
        ({"pseudonym": {}}, "regions.cn.keys.pseudonym: Value error, name an environment variable"),
        ({"pseudonym": {"fiel": "x"}}, "regions.cn.keys.pseudonym.fiel: unknown key \\(did you mean 'file'\\?\\)"),
        ({"audit": {"env": "X_KEY"}}, "regions.cn.keys.audit.anchor: required key is missing"),
        ({"mac": {}}, "regions.cn.keys.mac: unknown key"),
    ],
)
def test_key_settings_are_validated_in_one_line(tmp_path, keys_block, message):
    path = _edit(tmp_path, lambda document: document["regions"]["cn"].update(keys=keys_block))
    with pytest.raises(PolicyError, match=message) as error:
        load_params(path)
    assert "\n" not in str(error.value)


def test_a_key_file_linked_into_a_store_after_loading_stops_the_store(tmp_path):
    params = load_params(make_params(tmp_path))
    make_store(tmp_path, "cn")
    (tmp_path / "data" / "eu").mkdir(parents=True)
    (tmp_path / "data" / "eu" / "k").write_text(os.urandom(32).hex())
    (tmp_path / "keys" / "cn").mkdir(parents=True, exist_ok=True)
    os.symlink(tmp_path / "data" / "eu" / "k", tmp_path / "keys" / "cn" / "pseudonym.key")
    with pytest.raises(PolicyError, match="regions.cn.keys.pseudonym.file: .* lies inside the store of region 'eu'"):
        RegionStore(params, "cn")


@pytest.mark.parametrize("plant", ["file", "folder link"])
def test_a_store_with_the_old_secrets_folder_refuses_to_start(tmp_path, plant):
    store = make_store(tmp_path, "cn")
    if plant == "file":
        store.write_bytes("secrets/pseudonym.key", os.urandom(32))
    else:
        os.symlink(tmp_path / "keys", Path(store.root) / "secrets")
    with pytest.raises(PolicyError, match="secrets: region cn's store holds keys of the old layout") as error:
        make_store(tmp_path, "cn")
    assert "\n" not in str(error.value)


def test_a_lost_pseudonym_key_is_not_silently_replaced(tmp_path):
    store = make_store(tmp_path, "cn")
    keys.pseudonym_key(store)
    (tmp_path / "keys" / "cn" / "pseudonym.key").unlink()
    with pytest.raises(PolicyError, match="the key file is missing, but audit record 1 created it; restore it"):
        keys.pseudonym_key(make_store(tmp_path, "cn"))
    assert not (tmp_path / "keys" / "cn" / "pseudonym.key").exists()


def test_a_lost_audit_key_stops_the_log(tmp_path):
    store = make_store(tmp_path, "cn")
    store.audit.append("t", "ingest", "x")
    (tmp_path / "keys" / "cn" / "audit.key").unlink()
    with pytest.raises(AuditError, match="the audit key .* is missing; restore it"):
        make_store(tmp_path, "cn").audit.append("t", "ingest", "y")
    assert not (tmp_path / "keys" / "cn" / "audit.key").exists()


def test_a_key_readable_by_others_or_missing_without_create_is_refused(tmp_path):
    store = make_store(tmp_path, "cn")
    keys.pseudonym_key(store)
    os.chmod(tmp_path / "keys" / "cn" / "pseudonym.key", 0o644)
    with pytest.raises(PolicyError, match="readable by others \\(mode 0644\\); chmod 600 it"):
        keys.pseudonym_key(store)
    document = params_document(tmp_path)
    document["regions"]["cn"]["keys"] = {"pseudonym": {"file": "elsewhere/p.key", "create": False}}
    params = load_params(make_params(tmp_path, document))
    with pytest.raises(PolicyError, match="key file missing \\(create: false\\); restore it"):
        keys.pseudonym_key(RegionStore(params, "cn"))


def _create(params_path, queue):
    ring, made = keys.create(load_params(params_path), "cn", "pseudonym")
    queue.put((ring.current, made))


def test_concurrent_creators_agree_on_one_key(tmp_path):
    path = make_params(tmp_path)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_create, args=(path, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(60)
    assert len({key for key, _ in results}) == 1 and sum(made for _, made in results) == 1
