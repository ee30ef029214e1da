#!/usr/bin/env python3
"""bench/bindings_py.py - Python binding throughput beside a plain baseline.

  bindings_py.py DIR [SESSIONS] [OPS]

Creates SESSIONS sessions (default 1000) with ~200 bytes of data in a fresh
sessgate store under DIR, and the same records in a dbm.gnu file opened
once, then times, in this one process:

  get        store.get(id)                      vs  json.loads(db[id])
  get+data   store.get(id) then a data read     vs  json.loads(db[id]), a read
  get/memo, get+data/memo   the same with get(id, memo=True), the opt-in
             SG_GET_MEMO (no lock, no syscall while nobody wrote)
  save       s["n"] = i; s.save()               vs  rec["data"]["n"] = i;
                                                    db[id] = json.dumps(rec)
  update     with store.update(id) as s: n+=1   vs  loads, +1, dumps, store
  datacheck  the data rules' walk (sessgate._data.check, run at every
             assignment and save)               vs  json.dumps of the same data

and prints one line per row: "name ours_ops_s baseline_ops_s ratio".
The baseline has no locking, no expiry check and no cross-process
visibility (a kept GDBM handle does not see other writers); it is the
floor of what any Python session store over GDBM + JSON can cost.

How it is timed, so that a loaded machine cannot tilt a ratio: each row
runs ROUNDS (env BENCH_PY_ROUNDS, default 21) rounds; a round is one slice
of the baseline and one slice of ours, back to back, in alternating order
(base first in even rounds, ours first in odd ones), each slice OPS/ROUNDS
operations.  A slice is timed in CPU time of this process
(time.process_time: user + system, so the store's syscalls count; time
spent waiting for a core does not).  The ratio printed is the median of
the rounds' ratios; the ops/s figures are the medians of the slices.
Neither side waits for a lock or for I/O (one process, files in the page
cache), so on a quiet machine CPU time and wall time agree.
"""

import dbm.gnu
import json
import os
import statistics
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ.get("SG_BUILDDIR", TOP), "bindings", "python"))
import sessgate  # noqa: E402

ROUNDS = max(int(os.environ.get("BENCH_PY_ROUNDS", "21")), 1)
DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def rate(fn, ops):
    clock = time.process_time
    t0 = clock()
    fn(ops)
    return ops / max(clock() - t0, 1e-9)


def compare(ours, base, n):
    """(ours ops/s, base ops/s, ratio): medians over ROUNDS interleaved
    rounds (see the module docstring)."""
    base(min(n, 2000))              # warm both paths
    ours(min(n, 2000))
    per = max(n // ROUNDS, 1)
    o_rates, b_rates, ratios = [], [], []
    for r in range(ROUNDS):
        if r % 2 == 0:
            b = rate(base, per)
            o = rate(ours, per)
        else:
            o = rate(ours, per)
            b = rate(base, per)
        o_rates.append(o)
        b_rates.append(b)
        ratios.append(o / b)
    med = statistics.median
    return med(o_rates), med(b_rates), med(ratios)


def main(argv):
    d = argv[0]
    nsess = int(argv[1]) if len(argv) > 1 else 1000
    ops = int(argv[2]) if len(argv) > 2 else 100000
    data = {"cart": [101, 202, 303], "n": 0, "theme": "dark",
            "prefs": {"lang": "en", "tz": "Europe/Berlin", "beta": False},
            "csrf": "0123456789abcdef0123456789abcdef", "ratio": 0.25}
    store = sessgate.Store(os.path.join(d, "bench.db"), idle_timeout=3600)
    db = dbm.gnu.open(os.path.join(d, "baseline.gdbm"), "nf")
    ids = []
    for i in range(nsess):
        s = store.create(user=f"user{i % 50}", data=data)
        ids.append(s.id)
        db[s.id] = s.to_json()
    db.sync()
    keys = [k.encode() for k in ids]

    def ours_get(n):
        get = store.get
        for i in range(n):
            get(ids[i % nsess])

    def base_get(n):
        loads = json.loads
        for i in range(n):
            loads(db[keys[i % nsess]])

    def ours_get_data(n):
        get = store.get
        for i in range(n):
            get(ids[i % nsess])["n"]

    def base_get_data(n):
        loads = json.loads
        for i in range(n):
            loads(db[keys[i % nsess]])["data"]["n"]

    # Opt-in rows (Store.get(memo=True), SG_GET_MEMO): not what an app
    # gets by default, so not the target rows; same baselines.
    def ours_get_memo(n):
        get = store.get
        for i in range(n):
            get(ids[i % nsess], memo=True)

    def ours_get_data_memo(n):
        get = store.get
        for i in range(n):
            get(ids[i % nsess], memo=True)["n"]

    sessions = [store.get(sid) for sid in ids]
    records = [json.loads(db[k]) for k in keys]

    def ours_save(n):
        for i in range(n):
            s = sessions[i % nsess]
            s["n"] = i
            s.save()

    def base_save(n):
        for i in range(n):
            rec = records[i % nsess]
            rec["data"]["n"] = i
            db[keys[i % nsess]] = DUMPS(rec)

    def ours_update(n):
        upd = store.update
        for i in range(n):
            with upd(ids[i % nsess]) as s:
                s["n"] = s["n"] + 1

    def base_update(n):
        for i in range(n):
            k = keys[i % nsess]
            rec = json.loads(db[k])
            rec["data"]["n"] += 1
            db[k] = DUMPS(rec)

    from sessgate import _data

    def ours_check(n):
        check = _data.check
        for _ in range(n):
            check(data)

    def base_check(n):
        for _ in range(n):
            DUMPS(data)

    rows = [("get", ours_get, base_get, ops),
            ("get+data", ours_get_data, base_get_data, ops),
            ("get/memo", ours_get_memo, base_get, ops),
            ("get+data/memo", ours_get_data_memo, base_get_data, ops),
            ("save", ours_save, base_save, ops // 4),
            ("update", ours_update, base_update, ops // 4),
            ("datacheck", ours_check, base_check, ops)]
    # Why interleaved rounds and medians: on a shared, loaded machine a
    # figure taken in one slice of time and its baseline in the next can
    # differ by the load alone (2x was seen); CPU time drops the waits for
    # a core, the alternation and the median drop what is left.
    for name, ours, base, n in rows:
        o, b, ratio = compare(ours, base, n)
        print(f"{name} {o:.0f} {b:.0f} {ratio:.2f}", flush=True)
    db.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
