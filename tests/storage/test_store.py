import os

import pytest

from builders import make_store
from curation.errors import ResidencyViolation


@pytest.fixture
def cn(tmp_path):
    return make_store(tmp_path, "cn")


def test_write_read_list_delete_roundtrip(cn):
    digest = cn.write_bytes("landing/v1/clip.mp4", b"video")
    assert cn.read_bytes("landing/v1/clip.mp4") == b"video" and cn.sha256("landing/v1/clip.mp4") == digest
    assert list(cn.walk("landing")) == ["landing/v1/clip.mp4"]
    cn.copy("landing/v1/clip.mp4", "raw/clip.mp4")
    cn.move("raw/clip.mp4", "raw/moved.mp4")
    assert cn.exists("raw/moved.mp4") and not cn.exists("raw/clip.mp4")
    cn.delete("raw/moved.mp4", reason="retention")
    assert not cn.exists("raw/moved.mp4")
    actions = [r["action"] for r in cn.audit.records()]
    assert actions == ["create_key", "copy", "move", "delete"]  # the audit key is made on first use
    assert cn.audit.records()[-1]["sha256"] == digest


@pytest.mark.parametrize(
    "key, reaches",
    [
        ("../eu/landing/x.mp4", "region 'eu'"),
        ("landing/../../eu/x", "region 'eu'"),
        ("../../etc/passwd", "outside every region"),
        ("/etc/passwd", "outside every region"),
        ("file:///etc/passwd", "outside every region"),
        ("s3://other-bucket/x", "outside every region"),
        ("http://example.com/x", "another storage scheme"),
    ],
)
@pytest.mark.parametrize("operation", ["read_bytes", "write_bytes", "exists", "delete", "walk"])
def test_escapes_are_refused_before_any_byte_moves_and_audited(tmp_path, cn, key, reaches, operation):
    eu = make_store(tmp_path, "eu")
    eu.write_bytes("landing/x.mp4", b"eu data")
    before = sorted(p for p in (tmp_path / "data").rglob("*") if "audit" not in p.parts)
    args = (key, b"payload") if operation == "write_bytes" else (key,)
    with pytest.raises(ResidencyViolation) as error:
        getattr(cn, operation)(*args)
    assert "region 'cn'" in str(error.value) and reaches in str(error.value)
    assert sorted(p for p in (tmp_path / "data").rglob("*") if "audit" not in p.parts) == before
    assert eu.read_bytes("landing/x.mp4") == b"eu data"
    refused = cn.audit.records()[-1]
    assert refused["action"] == "refused" and refused["object"] == key


def test_absolute_path_inside_the_root_is_fine(cn):
    cn.write_bytes("a/b.txt", b"1")
    assert cn.read_bytes(os.path.join(cn.root, "a/b.txt")) == b"1"
    assert cn.read_bytes(f"file://{cn.root}/a/b.txt") == b"1"


def test_symlink_into_another_region_is_refused(tmp_path, cn):
    eu = make_store(tmp_path, "eu")
    eu.write_bytes("raw/secret.mp4", b"eu raw")
    os.makedirs(os.path.join(cn.root, "landing"), exist_ok=True)
    os.symlink(os.path.join(eu.root, "raw"), os.path.join(cn.root, "landing", "link"))
    with pytest.raises(ResidencyViolation, match="region 'eu'"):
        cn.read_bytes("landing/link/secret.mp4")
    with pytest.raises(ResidencyViolation, match="region 'eu'"):
        cn.write_bytes("landing/link/new.mp4", b"x")
    assert not os.path.exists(os.path.join(eu.root, "raw", "new.mp4"))


@pytest.mark.parametrize("operation", ["copy", "move"])
def test_copy_or_move_to_another_region_is_refused(tmp_path, cn, operation):
    eu = make_store(tmp_path, "eu")
    cn.write_bytes("redacted/clip.mp4", b"cn clip")
    with pytest.raises(ResidencyViolation) as error:
        getattr(cn, operation)("redacted/clip.mp4", "landing/clip.mp4", to=eu)
    assert "region 'cn'" in str(error.value) and "region 'eu'" in str(error.value)
    assert cn.exists("redacted/clip.mp4") and not eu.exists("landing/clip.mp4")
    assert cn.audit.records()[-1]["action"] == "refused"
    with pytest.raises(ResidencyViolation, match="region 'eu'"):
        getattr(cn, operation)("redacted/clip.mp4", os.path.join(eu.root, "landing/clip.mp4"))
    assert [r["action"] for r in cn.audit.records()] == ["create_key", "refused", "refused"] and cn.audit.verify() == 3


def test_atomic_write_leaves_no_partial_files(cn):
    cn.write_bytes("x/y.bin", b"a" * 1000)
    cn.write_bytes("x/y.bin", b"b")
    assert cn.ls("x") == ["x/y.bin"] and cn.read_bytes("x/y.bin") == b"b"
