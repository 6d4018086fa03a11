"""PyIceberg's AWS Glue Data Catalog, each table's metadata file parsed once per process (imported only for a Glue
catalog: it loads boto3)."""

from __future__ import annotations

import functools

from pyiceberg.catalog import METADATA_LOCATION
from pyiceberg.catalog.glue import GlueCatalog
from pyiceberg.table import Table

from tvtime_platform.lake.catalog import StagedWithoutCopy, kept_table


class KeptGlueCatalog(StagedWithoutCopy, GlueCatalog):
    """PyIceberg's Glue catalog, each table's metadata file parsed once per process (`kept_table`), its commits staged
    without a copy (`StagedWithoutCopy`)."""

    def _convert_glue_to_iceberg(self, glue_table: dict) -> Table:
        load = functools.partial(super()._convert_glue_to_iceberg, glue_table)
        location = (glue_table.get("Parameters") or {}).get(METADATA_LOCATION)
        if location is None or "DatabaseName" not in glue_table or "Name" not in glue_table:  # PyIceberg's own error
            return load()
        return kept_table(self, (glue_table["DatabaseName"], glue_table["Name"]), location, load)
