"""Registries: objects of one sort (benchmark kinds, judges, annotators) by name.

srft registers its own objects the way a user's module does, with `register`; a config names
them, and lists the user's modules under `plugins` so that they are imported before its names
are checked. As lm-evaluation-harness does with its tasks, a name is registered once: a second
object under a taken name is an error rather than a silent replacement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from srft.errors import SrftError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object for one sort of object, e.g. `Registry("judge")`."""

    def __init__(self, sort: str) -> None:
        self.sort = sort
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers its object under `name` and returns it unchanged."""

        def add(obj: T) -> T:
            held = self._entries.get(name)
            if held is not None and held is not obj:
                raise SrftError(f"{self.sort} '{name}' is already registered; choose another name")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str, key: str | None = None) -> T:
        """The object registered as `name`; the error names `key` (a config key) when given."""
        if name not in self._entries:
            where = f"{key}: " if key else ""
            known = ", ".join(self.names()) or "none"
            raise SrftError(f"{where}unknown {self.sort} '{name}' (known: {known})")
        return self._entries[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def values(self) -> list[T]:
        """The registered objects, in the order they were registered."""
        return list(self._entries.values())
