"""Errors of checkpoints and of the state store that keeps them."""

from __future__ import annotations

from .core import CheckpointError, LakefnError


class NotATableFunction(CheckpointError):
    def __init__(self, function: str, table_functions: list[str]) -> None:
        self.function = function
        known = ", ".join(sorted(table_functions)) or "(none)"
        super().__init__(f"{function!r} is not a unity_table function; those are: {known}")


class WrongTable(CheckpointError):
    def __init__(self, function: str, watched: object, asked: object) -> None:
        self.function = function
        super().__init__(f"{function!r} watches {watched}, not {asked}")


class BadCheckpointVersion(CheckpointError):
    """Below -1, or (when the table's `latest` version is known) past it."""

    def __init__(self, version: int, table: object = None, latest: int | None = None) -> None:
        self.version = version
        if latest is None:
            super().__init__(f"version {version}: a checkpoint is -1 (before version 0) or more")
        else:
            super().__init__(
                f"version {version}: {table} is at version {latest}, so a checkpoint is "
                f"-1 (deliver from version 0) up to {latest}"
            )


class LeaseHeld(CheckpointError):
    def __init__(self, function: str, holder: str | None, until: str, force_hint: str) -> None:
        self.function = function
        self.holder = holder
        super().__init__(
            f"{function}: {holder or 'another process'} holds the lease (until {until}) and "
            f"is delivering this table; stop it first, or {force_hint} (it then resumes "
            "from the new checkpoint)"
        )


class CheckpointBusy(CheckpointError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"{key}: the checkpoint kept moving; try again")


# -- the state store --------------------------------------------------------------------------


class StateError(LakefnError):
    """The `state:` setting, or the store it names, cannot be used."""


class BadStateSetting(StateError):
    """`state:` names no store lakefn knows: it is empty, has an unknown `problem="scheme"`
    or is a malformed `problem="sqlite"` URL (`forms` are the ones lakefn knows); subclasses
    pass their own `problem` in words."""

    def __init__(self, state: str, problem: str = "", *, forms: str = "") -> None:
        self.state = state
        if not state.strip():
            super().__init__(f"state is empty; expected {forms}")
        elif problem == "scheme":
            scheme = state.split("://", 1)[0].lower()
            super().__init__(f"state {state!r} has an unknown scheme {scheme!r}; expected {forms}")
        elif problem == "sqlite":
            super().__init__(
                f"state {state!r}: a SQLite URL is sqlite:///relative/path or sqlite:////abs"
            )
        else:
            super().__init__(f"state {state!r}: {problem}")


class BadStateOptions(BadStateSetting):
    def __init__(self, state: str, store: str, known: str, unknown: set[str]) -> None:
        problem = f"{store} takes only {known}, not {', '.join(sorted(unknown))}"
        super().__init__(state, problem)


class BadLakebaseName(BadStateSetting):
    """A Lakebase `what` ("instance" or "database") name from `where` (the `state:` setting or
    the environment variable that gave it) that cannot name one."""

    RULES = {
        "instance": "1 to 63 letters, digits and hyphens",
        "database": "1 to 63 letters, digits, underscores and hyphens",
    }

    def __init__(self, where: str, what: str, value: str) -> None:
        self.state = where
        self.value = value
        StateError.__init__(
            self, f"{where}: {value!r} is no Lakebase {what} name; one is {self.RULES[what]}"
        )


class BadStateSchema(StateError):
    def __init__(self, schema: str) -> None:
        self.schema = schema
        super().__init__(f"state schema {schema!r} must be 1 to 63 characters")


class StateNeedsPackage(StateError):
    def __init__(self, state: str, package: str | None, extra: str, purpose: str = "") -> None:
        self.package = package
        if purpose:
            super().__init__(
                f"state: {state} needs {package} for {purpose}: pip install 'lakefn[{extra}]'"
                " (or set PGPASSWORD)"
            )
        else:
            super().__init__(f"state {state!r} needs {package}: pip install 'lakefn[{extra}]'")


class LakebaseNotConfigured(StateError):
    """Neither the PG* variables of an App's database resource nor (`instance_hint`: the
    store also takes one) the name of a Lakebase instance to find."""

    def __init__(self, missing: list[str], *, instance_hint: bool = False) -> None:
        self.missing = missing
        hint = (
            "; or name the Lakebase instance (state: lakebase?instance=NAME, or "
            "LAKEFN_LAKEBASE_INSTANCE) and lakefn finds it with databricks-sdk, as a job does"
            if instance_hint
            else ""
        )
        super().__init__(
            f"state: lakebase needs {', '.join(missing)}, which Databricks Apps sets from "
            "the App's database resource; to run elsewhere, set PGHOST, PGPORT, "
            f"PGDATABASE, PGUSER (and PGPASSWORD, or databricks-sdk credentials){hint}"
        )


class StateLayoutTooNew(StateError):
    def __init__(self, where: str, schema: str, found: int, known: int) -> None:
        self.found = found
        super().__init__(
            f"the state store {where} schema {schema!r} is at layout "
            f"version {found}, written by a newer lakefn (this one knows up to "
            f"{known}); upgrade lakefn or use another schema"
        )


class StateStoreFailed(StateError):
    """A checkpoint store (or its journal) at `path` cannot do `what`: open, use, write,
    journal; `closed` after `close()`; `call` when a store call fails under the watcher."""

    _SAYS = {
        "open": "cannot open the checkpoint store {path}: {reason}",
        "use": "cannot use {path} as a checkpoint store: {reason}",
        "write": "cannot write to the checkpoint store {path}: {reason}",
        "journal": "cannot keep the journal in {path}: {reason}",
        "closed": "the checkpoint store {path} is closed",
        "call": "the checkpoint store failed: {reason}",
    }

    def __init__(self, what: str, path: object = "", reason: object = "") -> None:
        self.what = what
        self.path = path
        if isinstance(reason, BaseException) and not isinstance(reason, LakefnError):
            reason = f"{type(reason).__name__}: {reason}" if what == "call" else reason
        self.reason = str(reason)
        super().__init__(self._SAYS[what].format(path=path, reason=self.reason))


class NoJournal(StateError):
    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(f"state {state!r} keeps no journal")
