"""Taking over an existing pipeline data root: read its files, import them, write metadata back.

`membership` and `metadata` know every historical file shape; `importer` turns a data root
into events; `export` writes the ledger's origin keys back into metadata.json files.
"""

from .export import ExportPlan, apply_export, plan_export
from .importer import ImportPlan, SourceDisagrees, Stale, apply_import, import_event_id, plan_import
from .membership import SHAPES, MembershipFile, MembershipRow, MembershipShapeError, read_membership_csv
from .metadata import Origin, normalize_metadata, parse_json_object
from .problems import LegacyProblems, Problem

__all__ = [
    "SHAPES",
    "ExportPlan",
    "ImportPlan",
    "LegacyProblems",
    "MembershipFile",
    "MembershipRow",
    "MembershipShapeError",
    "Origin",
    "Problem",
    "SourceDisagrees",
    "Stale",
    "apply_export",
    "apply_import",
    "import_event_id",
    "normalize_metadata",
    "parse_json_object",
    "plan_export",
    "plan_import",
    "read_membership_csv",
]
