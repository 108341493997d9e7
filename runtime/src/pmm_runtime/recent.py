"""A bounded set of the keys seen last (what a process remembers without a store read)."""

from __future__ import annotations

from collections import OrderedDict


class Recent:
    """The last ``limit`` keys added, the oldest forgotten first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.limit:
            self._keys.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._keys
