"""lakefn's defaults, in one place: what it does when nothing says otherwise.

Every front door (`lakefn serve`, `%lakefn serve`, app.yaml, `lakefn tables`) imports these,
so a default changes here or nowhere.
"""

from __future__ import annotations

import re

#: the port `lakefn serve` and `%lakefn serve` listen on (Databricks Apps sets
#: DATABRICKS_APP_PORT, which `lakefn serve` honours)
DEFAULT_PORT = 8000
#: the address to listen on where nothing else should reach the server
LOCAL_HOST = "127.0.0.1"
#: the address to listen on as a Databricks App or in a Databricks notebook: their proxies
#: connect from outside the loopback interface
ALL_INTERFACES = "0.0.0.0"
#: seconds a stopping server lets running requests finish: a whole stop stays under 5 s, well
#: within the 15 s Databricks Apps waits between SIGTERM and SIGKILL
GRACEFUL_SHUTDOWN = 2
#: a function's name: it becomes a module name (functions/<name>_function.py) and a Job's
FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: where local Delta tables live (relative to app.yaml), unless `tables.local_root` says
LOCAL_CATALOG = ".lakefn/catalog"
#: the environment variable that overrides `tables.local_root` (the test harness sets it)
LOCAL_ROOT_ENV = "LAKEFN_LOCAL_ROOT"
