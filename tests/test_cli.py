import subprocess
import sys

from builders import make_params, make_store


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "curation.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_help_lists_every_command_with_a_line_each(tmp_path):
    result = _cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("policy", "audit", "fleet", "ingest", "status", "redact"):
        line = next(line for line in result.stdout.splitlines() if f" {command} " in line)
        assert len(line.split(command, 1)[1].strip(" │")) > 10


def test_audit_verify_cli(tmp_path):
    make_params(tmp_path)
    store = make_store(tmp_path, "cn")
    for i in range(3):
        store.audit.append("t", "ingest", f"c{i}")
    ok = _cli("audit", "verify", "--region", "cn", cwd=tmp_path)
    assert ok.returncode == 0 and "4 records" in ok.stdout  # the audit key's creation, then three
    text = open(store.audit.path).read().replace('"c1"', '"cX"')
    open(store.audit.path, "w").write(text)
    bad = _cli("audit", "verify", "--region", "cn", cwd=tmp_path)
    assert bad.returncode == 1 and "line 3: MAC mismatch" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    unknown = _cli("audit", "verify", "--region", "xx", cwd=tmp_path)
    assert unknown.returncode == 2 and "no region 'xx'" in unknown.stderr
