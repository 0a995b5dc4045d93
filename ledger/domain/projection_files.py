"""Names of the projection files (docs/FORMAT.md §8), shared by their writer and their reader.

`projections/` writes them and `CohortScope` reads them back; both take the names from here,
so a renamed file cannot leave one side behind.
"""

from __future__ import annotations

import re

from .ids import IDENTIFIER_RE

MANIFEST_FILE = "manifest.parquet"
MEMBERSHIP_FILE = "membership.parquet"
#: the ownership record: which seq and hash the files reflect, and which files a build owns
PROJECTION_INFO_FILE = "_projection.json"
COHORTS_DIR = "cohorts"
COHORT_CSV_NAME = "membership.csv"
#: the only relative paths a build ever writes or removes
PROJECTION_PATH_PATTERN = "|".join((re.escape(MANIFEST_FILE), re.escape(MEMBERSHIP_FILE), re.escape(COHORTS_DIR + "/")
                                    + IDENTIFIER_RE.pattern + re.escape("/" + COHORT_CSV_NAME)))


def cohort_csv_path(cohort_id: str) -> str:
    """Relative path of a cohort's slim membership CSV."""
    return f"{COHORTS_DIR}/{cohort_id}/{COHORT_CSV_NAME}"
