"""Runs when _data.tpch.dim_customer gets new Delta versions."""


def main(event):
    for commit in event.commits:
        event.log.info(
            "%s v%d: %s %s",
            event.table_name,
            commit.version,
            commit.operation,
            commit.operation_metrics.get("numOutputRows", ""),
        )
    return {
        "table": event.table_name,
        "versions": [c.version for c in event.commits],
        "operations": [c.operation for c in event.commits],
    }
