"""A Databricks Job's task: `lakefn run NAME` (written by `lakefn bundle`)."""

import sys

try:  # a session for the job's table source; `lakefn run` finds the active one
    from pyspark.sql import SparkSession

    SparkSession.builder.getOrCreate()
except Exception:  # noqa: BLE001 - no Spark here: lakefn picks another source
    pass

from lakefn.cli import main

code = main(sys.argv[1:])
if code:
    sys.exit(code)  # a function that failed after its retries fails the run
