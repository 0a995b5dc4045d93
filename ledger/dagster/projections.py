"""The projections as Dagster assets: one `build`, two table assets (docs/dagster.md).

`projection_assets` is the one documented way to keep the projection files current from
Dagster: materializing it runs `projections.build` into the resource's projections dir and
reports each table's row count and column schema (`dagster/row_count`,
`dagster/column_schema`), plus the seq and hash the files reflect. Pair it with the
`projections_current` check of `ledger_checks`.

No `from __future__ import annotations` here: Dagster reads the annotations of the
decorated functions (context, config, resources) when it builds the definitions.
"""


from pathlib import Path
from typing import Any, Iterator, Sequence

import dagster as dg

from .resource import CohortLedgerResource

#: asset name -> the file it stands for
TABLES = {"ledger_manifest": "manifest.parquet", "ledger_membership": "membership.parquet"}


def table_metadata(path: Path) -> dict[str, Any]:
    """Row count and column schema of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    schema = meta.schema.to_arrow_schema()
    return {
        "dagster/row_count": meta.num_rows,
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema]),
        "path": dg.MetadataValue.path(str(path)),
    }


def projection_assets(*, resource_key: str = "ledger", deps: Sequence[dg.AssetDep | dg.AssetKey | str] = (),
                      group_name: str | None = None) -> dg.AssetsDefinition:
    """A multi-asset materializing `ledger_manifest` and `ledger_membership` with one build."""
    specs = [dg.AssetSpec(name, deps=deps, group_name=group_name, description=f"{file} projected from the ledger")
             for name, file in TABLES.items()]

    @dg.multi_asset(specs=specs, name="ledger_projections", required_resource_keys={resource_key})
    def ledger_projections(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult[None]]:
        import projections

        resource: CohortLedgerResource = getattr(context.resources, resource_key)
        report = projections.build(resource.ledger_path, out_dir=resource.projections_out())
        for name, file in TABLES.items():
            yield dg.MaterializeResult(asset_key=name, metadata={
                **table_metadata(Path(report.out_dir) / file),
                "seq": report.seq, "hash": report.hash, "files_written": len(report.written)})

    return ledger_projections
