"""The CLI end to end with `--ledger s3://...` on the real S3 server, and the projections read
straight from the bucket by DuckDB (httpfs) and polars, as README and docs/FORMAT.md §10 show."""

from __future__ import annotations

from pathlib import Path

import orjson

from helpers.builders import created, event, jsonl, run_cli


def test_cli_end_to_end_on_s3(s3_url: str, s3_env: dict[str, str], tmp_path: Path) -> None:
    outputs: list[bytes] = []

    def cli(*args: str, stdin: bytes | None = None, code: int = 0, env: dict[str, str] | None = None) -> bytes:
        done = run_cli(*args, ledger=s3_url, stdin=stdin, env=env)
        outputs.extend([done.stdout, done.stderr])
        assert done.returncode == code, done.stderr.decode()
        return done.stdout

    assert orjson.loads(cli("init", "--json"))["ledger"] == s3_url
    cli("append", stdin=jsonl(event("cohort.opened", cohort_id="c1"), created("c1", "draft", "d1"),
                              created("c1", "draft", "d2")))
    cli("append", "--expected-seq", "1", stdin=jsonl(created("c1", "draft", "d3")), code=1)  # conflict
    cli("append", "--expected-seq", "3", stdin=jsonl(created("c1", "draft", "d3")))
    head = orjson.loads(cli("verify", "--json"))
    assert (head["ok"], head["seq"]) == (True, 4)
    assert [e["seq"] for e in orjson.loads(cli("log", "--json"))] == [1, 2, 3, 4]
    data = s3_url + "-data"
    built = orjson.loads(cli("build", "--out", data, "--json"))
    assert built["out_dir"] == data and "manifest.parquet" in built["written"]
    assert b"d3" in cli("show", "c1")
    local = tmp_path / "copy"
    cli("copy", s3_url, str(local))
    assert orjson.loads(run_cli("verify", "--json", ledger=local).stdout)["hash"] == head["hash"]
    bad = run_cli("verify", ledger=s3_url, env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert bad.returncode == 3 and bad.stderr.count(b"\n") == 1
    outputs.append(bad.stderr)
    secrets = [s3_env["AWS_SECRET_ACCESS_KEY"], s3_env["AWS_ACCESS_KEY_ID"], s3_env["AWS_ENDPOINT_URL"],
               s3_env["AWS_ENDPOINT_URL"].split("//")[1], "not-the-secret"]
    for out in outputs:
        for secret in secrets:
            assert secret.encode() not in out
    # nor in the events: provenance holds only what the caller gave
    assert all(secret.encode() not in line for line in cli("log", "--json").splitlines() for secret in secrets)


def _built(s3_url: str, tmp_path: Path) -> tuple[str, Path]:
    from projections import build

    from ledger import Ledger

    led = Ledger.init(s3_url)
    led.append([event("cohort.opened", cohort_id="c1")] + [created("c1", "draft", f"d{i}") for i in range(5)])
    out = s3_url + "-data"
    build(s3_url, out)
    build(s3_url, tmp_path / "local")
    return out, tmp_path / "local"


def test_duckdb_reads_the_projections_from_the_bucket(s3_url: str, s3_env: dict[str, str], tmp_path: Path) -> None:
    import duckdb
    import duckdb_extension_httpfs

    out, local = _built(s3_url, tmp_path)
    extension = next(Path(duckdb_extension_httpfs.__path__[0]).glob("extensions/*/httpfs.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    endpoint = s3_env["AWS_ENDPOINT_URL"].split("//")[1]
    con.execute(f"CREATE SECRET (TYPE s3, KEY_ID '{s3_env['AWS_ACCESS_KEY_ID']}', "
                f"SECRET '{s3_env['AWS_SECRET_ACCESS_KEY']}', ENDPOINT '{endpoint}', URL_STYLE 'path', "
                f"USE_SSL false, REGION '{s3_env['AWS_REGION']}')")
    remote = con.execute(f"SELECT gen_id, stage FROM read_parquet('{out}/manifest.parquet') ORDER BY gen_id").fetchall()
    mine = con.execute(f"SELECT gen_id, stage FROM read_parquet('{local}/manifest.parquet') ORDER BY gen_id").fetchall()
    assert remote == mine and len(remote) == 5


def test_polars_reads_the_projections_from_the_bucket(s3_url: str, s3_env: dict[str, str], tmp_path: Path) -> None:
    import polars as pl

    out, local = _built(s3_url, tmp_path)
    options = {"aws_endpoint_url": s3_env["AWS_ENDPOINT_URL"], "aws_access_key_id": s3_env["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": s3_env["AWS_SECRET_ACCESS_KEY"], "aws_region": s3_env["AWS_REGION"],
               "aws_allow_http": "true"}
    remote = pl.read_parquet(f"{out}/membership.parquet", storage_options=options)
    assert remote.equals(pl.read_parquet(local / "membership.parquet")) and remote.height == 5
