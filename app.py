"""Serve this project: `uvicorn app:app` (what Databricks Apps runs) or `lakefn serve`."""

import lakefn

app = lakefn.create_app()
