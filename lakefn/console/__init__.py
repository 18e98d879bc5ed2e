"""The console at `/`: a page over the same data as /lakefn/*, for the same callers.

Jinja2 is imported on the first page rendered, never by `import lakefn`."""

from __future__ import annotations

from .routes import Console

__all__ = ["Console"]
