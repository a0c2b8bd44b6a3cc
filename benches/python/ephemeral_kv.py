"""A small Python baseline of the reference library's ``EphemeralKV``.

Written to behave (and cost) like the reference implementation, so that the Rust crate can be
compared against it. Semantics kept on purpose, quirks included:

* One ``threading.RLock`` around a plain ``dict`` of key -> entry; an entry is a mutable
  (value, expire_at) pair (a regular dataclass, as in the reference; ``expire`` edits it in place).
* Values are stored and returned by reference; nothing is copied on ``set``/``get``.
* TTLs are on the wall clock (``time.time()``). A falsy ``ttl_s`` (``None`` or ``0``) means "no
  expiry"; a negative one gives an entry that is already expired. Expiry is checked lazily on
  ``get`` only (an expired entry is deleted there); ``list_append_unique``, ``list_pop_all`` and
  ``expire`` look at the raw entry and do not check expiry.
* ``list_append_unique`` shallow-copies the stored list, rebuilds the set of ids from that copy on
  every call, appends the dict items whose id is not in it (ids are not de-duplicated within one
  ``items`` batch; non-dict items are dropped), stores the new list with the given TTL (``None``
  clears an existing TTL), and returns a reference to the list now stored.
* ``list_pop_all`` removes the key and returns a shallow copy of the list (``[]`` if missing or not
  a list).
* ``mget``/``mset`` are loops of single ``get``/``set`` awaits.
* ``purge_expired`` snapshots all keys, then walks them in insertion order, removing expired
  entries until ``limit`` have been removed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class _Entry:
    value: Any
    expire_at: float | None = None


def _deadline(ttl_s: float | None) -> float | None:
    return time.time() + ttl_s if ttl_s else None


class EphemeralKV:
    """Process-local, transient key-value store for small values."""

    def __init__(self, *, prefix: str = "") -> None:
        self._data: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._prefix = prefix

    def _k(self, key: str) -> str:
        return f"{self._prefix}{key}" if self._prefix else key

    async def get(self, key: str, default: Any = None) -> Any:
        k = self._k(key)
        with self._lock:
            entry = self._data.get(k)
            if entry is None:
                return default
            if entry.expire_at and entry.expire_at < time.time():
                del self._data[k]
                return default
            return entry.value

    async def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        k = self._k(key)
        with self._lock:
            self._data[k] = _Entry(value, _deadline(ttl_s))

    async def delete(self, key: str) -> None:
        k = self._k(key)
        with self._lock:
            self._data.pop(k, None)

    async def list_append_unique(
        self, key: str, items: list[dict], *, id_key: str = "id", ttl_s: float | None = None
    ) -> list[dict]:
        k = self._k(key)
        with self._lock:
            entry = self._data.get(k)
            current = list((entry.value if entry is not None else None) or [])
            seen = {x.get(id_key) for x in current if isinstance(x, dict)}
            current.extend(x for x in items if isinstance(x, dict) and x.get(id_key) not in seen)
            self._data[k] = _Entry(current, _deadline(ttl_s))
            return current

    async def list_pop_all(self, key: str) -> list:
        k = self._k(key)
        with self._lock:
            entry = self._data.pop(k, None)
            if entry is not None and isinstance(entry.value, list):
                return list(entry.value)
            return []

    async def mget(self, keys: list[str]) -> list[Any]:
        return [await self.get(key) for key in keys]

    async def mset(self, kv: dict[str, Any], *, ttl_s: float | None = None) -> None:
        for key, value in kv.items():
            await self.set(key, value, ttl_s=ttl_s)

    async def expire(self, key: str, ttl_s: float) -> None:
        k = self._k(key)
        with self._lock:
            entry = self._data.get(k)
            if entry is not None:
                entry.expire_at = time.time() + ttl_s

    async def purge_expired(self, limit: int = 1000) -> int:
        removed = 0
        now = time.time()
        with self._lock:
            for k in list(self._data.keys()):
                if removed >= limit:
                    break
                entry = self._data.get(k)
                if entry is not None and entry.expire_at and entry.expire_at < now:
                    del self._data[k]
                    removed += 1
        return removed
