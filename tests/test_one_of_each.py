"""One of each piece of glue: one `%lakefn` help text, one function-name rule, one way to bind an
event to its invocation."""

from __future__ import annotations

import inspect
import logging

import pytest

from lakefn._exceptions import BadFunctionName
from lakefn.events import TimerEvent
from lakefn.notebook.magics import LakefnMagics, build_parser
from lakefn.notebook.session import Session

ONE_HTTP = """\
functions:
  - name: greet
    trigger: {type: http, endpoint: /greet}
"""


def test_the_usage_argparse_shows_is_the_help_of_the_magic() -> None:
    help_text = inspect.getdoc(LakefnMagics.lakefn) or ""
    listing = help_text.split("\n\n", 1)[1]
    usage = build_parser().format_usage()
    for line in listing.splitlines():
        assert line.strip() in usage, line
    assert "%lakefn run NAME [--scheduled-time ISO]" in help_text


@pytest.mark.parametrize("name", ["greet\n", "two words", "1st", "a-b", ""])
def test_a_notebook_function_name_follows_the_rule_of_app_yaml(project, name: str) -> None:
    project.config(ONE_HTTP)
    project.function("greet", "def main(event):\n    return 'hi'\n")
    session = Session({})
    try:
        session.load(project.app_yaml)
        with pytest.raises(BadFunctionName, match="is not a valid function name"):
            session.write_function(name, "def main(event):\n    return 1\n")
    finally:
        session.close()
    assert sorted(p.name for p in (project.root / "functions").iterdir()) == ["greet_function.py"]


def test_an_event_bound_again_logs_with_its_new_invocation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from datetime import datetime, timezone

    event = TimerEvent("tick", scheduled_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    caplog.set_level(logging.INFO, logger="lakefn.functions")
    event.bind("tick", "first", 1)
    event.log.info("one")
    event.bind("tick", "second", 2)  # a retry reusing the event object
    event.log.info("two")
    assert [(r.invocation_id, r.getMessage()) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("first", "[first] one"),
        ("second", "[second] two"),
    ]
    assert event.attempt == 2 and event.invocation_id == "second"
