"""Errors of the tools around the runtime: command, magic and route input, `lakefn init`,
`lakefn bundle`, and the test harness."""

from __future__ import annotations

from typing import Any

from .core import LakefnError

# -- input from commands, magics, routes and tests ---------------------------------------------


class InputError(LakefnError):
    """A command, magic, admin route or test call was given input it cannot use."""


class JsonInputError(InputError):
    """`what` (an option, the payload) from `source` (`argument` or a file) is not JSON, or
    the file cannot be read (`unreadable`)."""

    def __init__(self, what: str, source: str, reason: object, *, unreadable: bool = False) -> None:
        self.what = what
        self.source = source
        if unreadable:
            super().__init__(f"cannot read {what} from {source}: {reason}")
        else:
            super().__init__(f"{what} is not valid JSON ({source}): {reason}")


class RowsError(InputError):
    """Rows (for a simulated commit, or to write to a local table) that are not a JSON list of
    objects; `where` is the option or field that gave them."""

    def __init__(self, where: str, problem: str = "", *, non_empty: bool = False) -> None:
        self.where = where
        self.problem = problem
        kind = "a non-empty JSON list" if non_empty else "a JSON list"
        example = 'one per row, e.g. [{"id": 1}]'
        super().__init__(
            f"{where} must be {kind} of objects, {example}" + (f"; {problem}" if problem else "")
        )


class NoRowsGiven(RowsError):
    def __init__(self, what: str, options: str) -> None:
        self.where = options
        self.problem = ""
        InputError.__init__(self, f"give {what} with {options}")


class RowsFileError(RowsError):
    def __init__(self, path: object, problem: str) -> None:
        self.where = f"--file {path}"
        self.problem = problem
        InputError.__init__(self, f"--file {path}: {problem}")


class BadOperation(InputError):
    def __init__(self, option: str = "--operation") -> None:
        super().__init__(f"{option} must name an operation, e.g. WRITE, MERGE, DELETE")


class BadScheduledTime(InputError):
    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(
            f"--scheduled-time {text!r} is not an ISO 8601 time, e.g. 2026-03-01T02:30:00Z"
        )


class BadCount(InputError):
    def __init__(self, option: str, minimum: int = 1) -> None:
        super().__init__(f"{option} must be {minimum} or more")


class BadPort(InputError):
    def __init__(self, source: str, reason: object) -> None:
        self.source = source
        super().__init__(f"{source}: {reason}")


class BadVersion(InputError):
    def __init__(self, field: str, value: object, highest: int) -> None:
        self.field = field
        super().__init__(f"{field} must be a table version, 0 to {highest}; got {value!r}")


class BadFunctionName(InputError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name!r} is not a valid function name (letters, digits, _)")


class BadSimulatedCommit(InputError):
    """A manual invoke of a unity_table function whose payload is not a simulated commit."""

    def __init__(self, payload: Any, fields: tuple[str, ...]) -> None:
        import json

        super().__init__(
            "the input of a unity_table function is a simulated commit: an object with "
            f"some of {', '.join(fields)}; got {json.dumps(payload, default=repr)[:200]}"
        )


# -- projects, bundles, the notebook and the test harness --------------------------------------


class NoProject(LakefnError):
    def __init__(self) -> None:
        super().__init__("no project loaded: run `%lakefn load path/to/app.yaml` first")


class ProjectNotCreated(LakefnError):
    """`lakefn init` refuses a folder that is not empty (`reason` empty), or cannot write."""

    def __init__(self, target: object, reason: str = "") -> None:
        self.target = target
        if reason:
            super().__init__(f"cannot create the project in {target}: {reason}")
        else:
            super().__init__(f"{target} already exists and is not empty; pick a new folder")


class BundleError(LakefnError):
    """`lakefn bundle` cannot write the bundle."""


class NotConvertible(BundleError):
    """A cron schedule that no Quartz expression says exactly."""

    def __init__(self, schedule: str, reason: str) -> None:
        self.schedule = schedule
        self.reason = reason
        super().__init__(f"schedule {schedule!r} cannot run as a Databricks Job: {reason}")


class WheelUnavailable(BundleError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"cannot make lakefn's wheel for the bundle: {reason}; "
            "use --no-wheel to reference lakefn from your package index instead"
        )


class BundleResourceInvalid(BundleError):
    """A resource the bundle models refuse (`error`), or change when loaded (`loaded`)."""

    def __init__(
        self, key: str, value: object, *, error: object = None, loaded: object = None
    ) -> None:
        self.key = key
        if error is not None:
            super().__init__(f"bundle resource {key} does not load: {error}")
        else:
            super().__init__(f"bundle resource {key} changes when loaded: {loaded} != {value}")


class HarnessError(LakefnError):
    """The test harness was used wrongly (closed, nothing invoked) or gave up waiting."""

    _SAYS = {
        "closed": "this lakefn harness is closed",
        "nothing_invoked": "no function has been invoked yet in this test",
        "gave_up": "gave up after {timeout:g} s (the harness's `timeout`); the function "
        "may still be running",
        "no_server": "the test server did not start on {host}",
        "too_few": "{name!r} was invoked {done} time(s) in {timeout:g} s, not {count}",
    }

    def __init__(self, what: str, **facts: Any) -> None:
        self.what = what
        self.facts = facts
        super().__init__(self._SAYS[what].format(**facts))
