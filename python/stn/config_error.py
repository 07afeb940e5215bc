"""ConfigError: a mistake in a prototxt, reported with its file, line and column."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    path: str      # the file, as the user named it ("<string>" for text passed directly)
    line: int      # 1-based
    column: int    # 1-based

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


class ConfigError(ValueError):
    """A config mistake. str() reads 'path:line:column: message' when the place is known."""

    def __init__(self, message: str, location: Location | None = None):
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)
