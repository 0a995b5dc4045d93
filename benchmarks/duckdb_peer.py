"""The DuckDB peer: what a user could run instead of `build`, computing the same
`manifest.parquet` and `membership.parquet` from `events.jsonl` with SQL.

It reads only `seq`, `type` and `data` of each line (no hash chain, no domain rules, no
checkpoint, no CSVs): created rows joined with materialized ones make the manifest; each
(cohort, gen)'s latest created/reused/removed event by seq makes the membership, active
unless it is a removal. Rows are ordered like the projections (stage order, gen_id), so
the row counts can be compared with the ledger's own files.
"""

from __future__ import annotations

from pathlib import Path

#: the payload fields the two tables use; read_json ignores the rest
_DATA = ("STRUCT(cohort_id VARCHAR, stage VARCHAR, gen_id VARCHAR, template_id VARCHAR, combo_id VARCHAR, "
         "llm_model_id VARCHAR, parent_gen_id VARCHAR, replicate BIGINT, mode VARCHAR)")


def run(log_path: Path, out: Path, stages: list[str]) -> dict[str, int]:
    """Write out/manifest.parquet and out/membership.parquet; return their row counts."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE rank AS SELECT unnest(?::VARCHAR[]) AS stage, "
                "generate_subscripts(?::VARCHAR[], 1) AS r", [stages, stages])
    con.execute(f"""
        CREATE TEMP TABLE ev AS
        SELECT seq, type, data FROM read_json(?, format = 'newline_delimited',
            columns = {{seq: 'BIGINT', type: 'VARCHAR', data: '{_DATA}'}})""", [str(log_path)])
    con.execute("""
        CREATE TEMP TABLE manifest AS
        SELECT c.data.stage AS stage, c.data.gen_id AS gen_id, c.data.cohort_id AS cohort_id,
               c.data.template_id AS template_id, c.data.combo_id AS combo_id,
               c.data.llm_model_id AS llm_model_id, c.data.parent_gen_id AS parent_gen_id,
               coalesce(c.data.replicate, 1) AS replicate, c.data.mode AS mode, c.seq AS created_seq,
               m.gen_id IS NOT NULL AS materialized
        FROM ev c
        LEFT JOIN (SELECT DISTINCT data.gen_id AS gen_id FROM ev WHERE type = 'generation.materialized') m
               ON m.gen_id = c.data.gen_id
        JOIN rank ON rank.stage = c.data.stage
        WHERE c.type = 'generation.created'
        ORDER BY rank.r, gen_id""")
    con.execute("""
        CREATE TEMP TABLE membership AS
        WITH latest AS (
            SELECT data.cohort_id AS cohort_id, data.gen_id AS gen_id, max(seq) AS seq,
                   arg_max(type, seq) AS type
            FROM ev
            WHERE type IN ('generation.created', 'generation.reused', 'generation.removed')
            GROUP BY ALL)
        SELECT l.cohort_id, g.stage, l.gen_id, g.cohort_id AS origin_cohort_id,
               g.cohort_id <> l.cohort_id AS reused, l.seq AS added_seq
        FROM latest l JOIN manifest g USING (gen_id) JOIN rank ON rank.stage = g.stage
        WHERE l.type <> 'generation.removed'
        ORDER BY l.cohort_id, rank.r, l.gen_id""")
    counts = {}
    for table in ("manifest", "membership"):
        con.execute(f"COPY {table} TO '{out / (table + '.parquet')}' (FORMAT parquet, COMPRESSION zstd)")
        counts[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    con.close()
    return counts
