"""End-to-end smoke: init, append from stdin, verify, through the real CLI."""

from helpers.builders import created, jsonl, run_cli


def test_init_append_verify(tmp_path):
    led = tmp_path / "l"
    assert run_cli("init", ledger=led).returncode == 0
    batch = jsonl(created("A", "draft", "d1"), created("A", "essay", "e1", parent="d1"))
    r = run_cli("append", ledger=led, stdin=batch)
    assert r.returncode == 0, r.stderr
    r = run_cli("verify", ledger=led)
    assert r.returncode == 0 and b"head seq 2" in r.stdout
    r = run_cli("append", ledger=led, stdin=jsonl(created("../x", "draft", "d2")))
    assert r.returncode == 2 and b"cohort_id" in r.stderr
