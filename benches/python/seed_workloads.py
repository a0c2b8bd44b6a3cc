#!/usr/bin/env python3
"""Seed workloads for the Python baseline (``ephemeral_kv.EphemeralKV``).

Run:  python3 benches/python/seed_workloads.py [--repeat N] [--quick]

Prints ONE JSON object on stdout, seconds (float) per workload, each the best of ``--repeat`` runs
(default 3):  {"inbox": s, "capped_log": s, "capped_log_events": s, "small_1": s, "purge": s,
"mget": s}
``--quick`` divides every count below by 10 (a smoke test; value shapes stay the same).
Everything runs in one event loop (``asyncio.run``), from one coroutine, with ``time.perf_counter``.

Workloads (sizes are the constants below; the Rust side mirrors them):

* inbox: INBOX_ITEMS calls of ``list_append_unique("inbox", [inbox_item(i)])`` for i in
  0..INBOX_ITEMS, then one ``list_pop_all("inbox")`` (checked to return INBOX_ITEMS items). Timed:
  building each item + the calls + the pop.
* capped_log: for i in 0..LOG_APPENDS: build ``event(i)``; ``log = await kv.get("events", [])``;
  ``log = log + [event]``; ``log = log[-LOG_CAP:]`` (always, so always a copy);
  ``await kv.set("events", log, ttl_s=LOG_TTL_S)``. Timed: the whole loop incl. building events.
* capped_log_events: the capped log without the store, to tell building the events from storing
  them: for i in 0..LOG_APPENDS: build ``event(i)``, append it to a plain list, and drop the
  list's oldest event once it holds more than LOG_CAP. Timed: the whole loop.
* small_1: SMALL_KEYS keys ``f"k{i}"`` preloaded (not timed) with ``small_value(i)``; then SMALL_OPS
  operations from one coroutine: op j draws r = splitmix64 (seed SMALL_SEED, see ``splitmix64``),
  key index = r % SMALL_KEYS, and it is a ``set(key, j)`` (value: the int j, no TTL) if
  (r >> 32) % 10 == 0, else a ``get(key)``. The op list (kind + key string) is built BEFORE
  timing, so the PRNG and key formatting are excluded; only the get/set awaits are timed.
* purge: PURGE_LIVE keys ``f"live:{i}"`` = i (no TTL) inserted first, then PURGE_EXPIRED keys
  ``f"exp:{i}"`` = i set with ttl_s=60 and then ``expire(key, -60)`` (expire_at 60 s in the
  past). Expired keys are the newest in insertion order, so the purge walks every key. Timed: one
  ``purge_expired(limit=PURGE_LIMIT)``, checked to return PURGE_EXPIRED. The live keys are loaded
  once; the expired keys are re-added (not timed) before each repeat.
* mget: MGET_KEYS keys ``f"m{i}"`` = i preloaded (not timed); MGET_CALLS calls of
  ``mget(those keys)`` (the same list object each time). Timed: the calls.

Values (all deterministic; floats are computed exactly as written, IEEE-754 double, so Rust gets
bit-identical values with the same arithmetic; every string is ASCII):

inbox_item(i) -> JSON object, 9 fields, in this order:
    "id":            str   f"file-{i}"
    "name":          str   f"report-{i}.pdf"
    "mime_type":     str   "application/pdf"
    "size":          int   1024 + 37 * i
    "url":           str   f"https://files.example.com/f/file-{i}"
    "thumbnail_url": str   f"https://files.example.com/t/file-{i}.png"
    "platform":      str   "slack"
    "channel":       str   "C0123456789"
    "timestamp":     float 1700000000.0 + i * 0.5

event(i) -> JSON object, 7 fields, in this order:
    "id":        str   f"evt-{i}"
    "run_id":    str   "run-0001"
    "kind":      str   "llm.step"
    "text":      str   exactly 200 chars: f"step {i}: " right-padded with "." to 200
                       (Python f"step {i}: ".ljust(200, "."); Rust format!("{:.<200}", format!("step {i}: ")))
    "metrics":   object, 4 fields in this order:
                   "tokens_in":  int   i % 1000
                   "tokens_out": int   (7 * i) % 500
                   "latency_ms": float 10.0 + (i % 50) * 0.25
                   "cost_usd":   float (i % 100) * 1e-05
    "embedding": list of 64 floats: [((i + j) % 97) / 97.0 for j in 0..64]
    "ts":        float 1700000000.0 + i   (i converted to float, then added)

small_value(i) -> int i if i is even, else str f"v{i}"   (the small_1 preload)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep benches/python free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ephemeral_kv import EphemeralKV  # noqa: E402

# ---- sizes (full run; --quick divides each by 10) ----
INBOX_ITEMS = 2_000
LOG_APPENDS = 3_000
LOG_CAP = 1_000
LOG_TTL_S = 7 * 24 * 3600  # not scaled by --quick
SMALL_KEYS = 100_000
SMALL_OPS = 400_000
SMALL_SEED = 7  # not scaled
PURGE_LIVE = 1_000_000
PURGE_EXPIRED = 1_000
PURGE_LIMIT = 1_000
MGET_KEYS = 100
MGET_CALLS = 10_000
# ---- value shapes (not scaled) ----
EVENT_TEXT_LEN = 200
EMBEDDING_LEN = 64

_MASK = (1 << 64) - 1


def splitmix64(seed: int):
    """SplitMix64 (Steele et al.), so the Rust side can draw the very same sequence:
    state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
    z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31   (all wrapping u64)."""
    state = seed & _MASK
    while True:
        state = (state + 0x9E3779B97F4A7C15) & _MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        yield z ^ (z >> 31)


def inbox_item(i: int) -> dict:
    return {
        "id": f"file-{i}",
        "name": f"report-{i}.pdf",
        "mime_type": "application/pdf",
        "size": 1024 + 37 * i,
        "url": f"https://files.example.com/f/file-{i}",
        "thumbnail_url": f"https://files.example.com/t/file-{i}.png",
        "platform": "slack",
        "channel": "C0123456789",
        "timestamp": 1700000000.0 + i * 0.5,
    }


def event(i: int) -> dict:
    return {
        "id": f"evt-{i}",
        "run_id": "run-0001",
        "kind": "llm.step",
        "text": f"step {i}: ".ljust(EVENT_TEXT_LEN, "."),
        "metrics": {
            "tokens_in": i % 1000,
            "tokens_out": (7 * i) % 500,
            "latency_ms": 10.0 + (i % 50) * 0.25,
            "cost_usd": (i % 100) * 1e-05,
        },
        "embedding": [((i + j) % 97) / 97.0 for j in range(EMBEDDING_LEN)],
        "ts": 1700000000.0 + i,
    }


def small_value(i: int):
    return i if i % 2 == 0 else f"v{i}"


async def run_inbox() -> float:
    kv = EphemeralKV()
    t0 = time.perf_counter()
    for i in range(INBOX_ITEMS):
        await kv.list_append_unique("inbox", [inbox_item(i)])
    items = await kv.list_pop_all("inbox")
    dt = time.perf_counter() - t0
    assert len(items) == INBOX_ITEMS and items[-1]["id"] == f"file-{INBOX_ITEMS - 1}"
    return dt


async def run_capped_log() -> float:
    kv = EphemeralKV()
    t0 = time.perf_counter()
    for i in range(LOG_APPENDS):
        ev = event(i)
        log = await kv.get("events", [])
        log = log + [ev]
        log = log[-LOG_CAP:]
        await kv.set("events", log, ttl_s=LOG_TTL_S)
    dt = time.perf_counter() - t0
    log = await kv.get("events")
    assert len(log) == min(LOG_CAP, LOG_APPENDS) and log[-1]["id"] == f"evt-{LOG_APPENDS - 1}"
    return dt


async def run_capped_log_events() -> float:
    t0 = time.perf_counter()
    log = []
    for i in range(LOG_APPENDS):
        log.append(event(i))
        if len(log) > LOG_CAP:
            del log[0]
    dt = time.perf_counter() - t0
    assert len(log) == min(LOG_CAP, LOG_APPENDS) and log[-1]["id"] == f"evt-{LOG_APPENDS - 1}"
    return dt


async def run_small_1() -> float:
    kv = EphemeralKV()
    keys = [f"k{i}" for i in range(SMALL_KEYS)]
    for i, key in enumerate(keys):
        await kv.set(key, small_value(i))
    # Ops drawn before timing: (is_set, key); the PRNG and key formatting are NOT timed.
    rng = splitmix64(SMALL_SEED)
    ops = []
    for _ in range(SMALL_OPS):
        r = next(rng)
        ops.append(((r >> 32) % 10 == 0, keys[r % SMALL_KEYS]))
    t0 = time.perf_counter()
    for j, (is_set, key) in enumerate(ops):
        if is_set:
            await kv.set(key, j)
        else:
            await kv.get(key)
    return time.perf_counter() - t0


async def load_purge_store() -> EphemeralKV:
    kv = EphemeralKV()
    for i in range(PURGE_LIVE):
        await kv.set(f"live:{i}", i)
    return kv


async def run_purge(kv: EphemeralKV) -> float:
    for i in range(PURGE_EXPIRED):  # not timed; newest in insertion order
        key = f"exp:{i}"
        await kv.set(key, i, ttl_s=60)
        await kv.expire(key, -60)
    t0 = time.perf_counter()
    removed = await kv.purge_expired(limit=PURGE_LIMIT)
    dt = time.perf_counter() - t0
    assert removed == PURGE_EXPIRED, removed
    return dt


async def run_mget() -> float:
    kv = EphemeralKV()
    keys = [f"m{i}" for i in range(MGET_KEYS)]
    for i, key in enumerate(keys):
        await kv.set(key, i)
    t0 = time.perf_counter()
    for _ in range(MGET_CALLS):
        values = await kv.mget(keys)
    dt = time.perf_counter() - t0
    assert values == list(range(MGET_KEYS))
    return dt


async def main(repeat: int) -> dict:
    result = {}
    for name, run in (
        ("inbox", run_inbox),
        ("capped_log", run_capped_log),
        ("capped_log_events", run_capped_log_events),
        ("small_1", run_small_1),
    ):
        result[name] = min([await run() for _ in range(repeat)])
    purge_kv = await load_purge_store()
    result["purge"] = min([await run_purge(purge_kv) for _ in range(repeat)])
    del purge_kv
    result["mget"] = min([await run_mget() for _ in range(repeat)])
    return result


def scale_down() -> None:
    g = globals()
    for name in ("INBOX_ITEMS", "LOG_APPENDS", "LOG_CAP", "SMALL_KEYS", "SMALL_OPS",
                 "PURGE_LIVE", "PURGE_EXPIRED", "PURGE_LIMIT", "MGET_KEYS", "MGET_CALLS"):
        g[name] //= 10


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per workload; best is kept")
    parser.add_argument("--quick", action="store_true", help="divide all counts by 10")
    args = parser.parse_args()
    if args.quick:
        scale_down()
    print(json.dumps(asyncio.run(main(max(1, args.repeat)))))
