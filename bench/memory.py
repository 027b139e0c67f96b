#!/usr/bin/env python3
"""Benchmark: the engine's peak memory against the size of what it backs up (issue 22: at most
128 MiB, flat from 1 GiB to 4 GiB).

    .venv/bin/python bench/memory.py --sizes-mib 1024,4096 --runs 3 --worker-backups 8 \
        [--baseline <checkout>] --out var/bench/memory.json

Two ways the engine is used, measured separately:

* **one backup per process** (the CLI, a script): a fresh process makes the initial backup of a
  seeded tree (bench/dataset.py) of each size into a fresh store; peak RSS from ``wait4``. The
  sizes and checkouts are interleaved, order alternating, and each figure is a median of the runs.
* **one long-lived process backing up again and again** (a Celery worker): one process makes
  ``--worker-backups`` initial backups in a row, cycling through the sizes, each into a fresh
  store; its peak is reset before each (``/proc/self/clear_refs``) so each backup's own peak is
  read (``VmHWM``). Memory that malloc keeps after one backup shows up as a rising peak later.

A peak is the highest point of a working set that swings from one moment to the next, so one
run says little: compare medians, and the same checkout's sizes with each other.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RSS_LIMIT_MIB = 128
FLAT_RATIO = 1.15  # largest size's median peak over the smallest's, one backup per process
DRIFT_RATIO = 1.10  # a worker's highest peak in its second half over its first half


def worker_child(work: str, trees: list[str]) -> None:
    """Run in the checkout under test (PYTHONPATH): back up each tree in turn in this process and
    print one JSON line per backup: the tree, its own peak RSS and its wall time."""
    from vaults.store import Store
    from vaults.store.location import open_backend

    key = bytes.fromhex(os.environ["STRONGROOM_STORE_KEY"])
    for i, tree in enumerate(trees):
        d = os.path.join(work, f"worker-{i}")
        shutil.rmtree(d, ignore_errors=True)
        store = Store.init(open_backend(os.path.join(d, "store"), create=True), key,
                           cache_dir=os.path.join(d, "cache"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset this process's peak RSS (VmHWM)
        t0 = time.perf_counter()
        store.backup_tree(tree)
        wall = time.perf_counter() - t0
        store.close()
        with open("/proc/self/status") as f:
            hwm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        shutil.rmtree(d, ignore_errors=True)
        print(json.dumps({"tree": tree, "rss_mib": hwm_kib / 1024, "wall": wall}), flush=True)


def _trees(args) -> dict[int, str]:
    import dataset

    trees = {}
    for size in args.sizes:
        path = os.path.join(args.work, f"data-{size}-{args.seed}")
        if not os.path.exists(path + ".done"):
            shutil.rmtree(path, ignore_errors=True)
            json.dump(dataset.make_tree(path, size, args.seed), open(path + ".done", "w"))
        trees[size] = path
    return trees


def _fresh_processes(args, tools, trees):
    out = {t.name: {size: [] for size in args.sizes} for t in tools}
    for i in range(args.runs):
        for size in args.sizes:
            for tool in (tools if i % 2 == 0 else tools[::-1]):
                tool.reset()
                tool.init()
                wall, rss = tool.backup("initial", trees[size])
                out[tool.name][size].append({"rss_mib": rss, "wall": wall})
                print(f"run {i + 1} {tool.name:10} {size:>6} MiB  peak {rss:6.1f} MiB  {wall:6.2f} s", flush=True)
    for tool in tools:
        tool.reset()
    return out


def _worker_series(args, tools, trees):
    sizes = [args.sizes[i % len(args.sizes)] for i in range(args.worker_backups)]
    out = {}
    for tool in tools:
        env = tool.env()
        cmd = [sys.executable, "-P", os.path.abspath(__file__), "--worker-child", args.work,
               *[trees[s] for s in sizes]]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{tool.name}: the worker series failed:\n{r.stderr[-4000:]}")
        rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        for row, size in zip(rows, sizes):
            row["size_mib"] = size
        out[tool.name] = rows
        print(f"worker {tool.name:10} peaks (MiB): " + " ".join(f"{row['rss_mib']:.0f}" for row in rows), flush=True)
    return out


def _verdicts(args, fresh, worker):
    small, large = args.sizes[0], args.sizes[-1]
    summary = {}
    for name in fresh:
        med = {size: statistics.median(r["rss_mib"] for r in fresh[name][size]) for size in args.sizes}
        peaks = worker[name]
        half = max(1, len(peaks) // 2)
        first, second = max(p["rss_mib"] for p in peaks[:half]), max(p["rss_mib"] for p in peaks[half:] or peaks)
        highest = max([r["rss_mib"] for size in args.sizes for r in fresh[name][size]] + [p["rss_mib"] for p in peaks])
        summary[name] = {
            "fresh_median_rss_mib": med,
            "fresh_median_wall": {size: statistics.median(r["wall"] for r in fresh[name][size]) for size in args.sizes},
            "flat_ratio": med[large] / med[small],
            "worker_peaks_mib": [p["rss_mib"] for p in peaks],
            "worker_drift": second / first,
            "highest_rss_mib": highest,
            "within_limit": highest <= RSS_LIMIT_MIB,
            "flat": med[large] / med[small] <= FLAT_RATIO,
            "no_drift": second / first <= DRIFT_RATIO,
        }
    return summary


def _print_table(args, summary):
    print()
    print(f"peak RSS (MiB), one backup per process, median of {args.runs}")
    names = list(summary)
    print(f"{'tree':>10} " + " ".join(f"{n:>12}" for n in names))
    for size in args.sizes:
        print(f"{size:>6} MiB " + " ".join(f"{summary[n]['fresh_median_rss_mib'][size]:12.1f}" for n in names))
    print(f"{'ratio':>10} " + " ".join(f"{summary[n]['flat_ratio']:12.2f}" for n in names)
          + f"   (flat: <= {FLAT_RATIO})")
    print(f"\nlong-lived process, {args.worker_backups} backups in a row (sizes cycled), each backup's peak")
    for n in names:
        s = summary[n]
        print(f"{n:>12}: " + " ".join(f"{p:.0f}" for p in s["worker_peaks_mib"])
              + f"   second half / first half {s['worker_drift']:.2f} (no drift: <= {DRIFT_RATIO})")
    print()
    for n in names:
        s = summary[n]
        print(f"{n:>12}: highest {s['highest_rss_mib']:.0f} MiB "
              f"({'met' if s['within_limit'] else 'MISSED'} <= {RSS_LIMIT_MIB}); "
              f"{'flat' if s['flat'] else 'GROWS'} with the size; "
              f"{'no drift' if s['no_drift'] else 'DRIFTS'} over a worker's backups")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes-mib", default="1024,4096", help="tree sizes, comma-separated (default 1024,4096)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--worker-backups", type=int, default=8)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", default=os.path.join(os.path.dirname(HERE), "var", "bench", "work"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "var", "bench", "memory.json"))
    ap.add_argument("--baseline", metavar="DIR", help="also measure the engine of this checkout")
    ap.add_argument("--worker-child", nargs="+", metavar=("WORK", "TREE"), help=argparse.SUPPRESS)
    ap.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker_child:
        return worker_child(args.worker_child[0], args.worker_child[1:])
    import engine

    args.sizes = sorted(int(s) for s in args.sizes_mib.split(","))
    if args.runs < 1 or args.worker_backups < 2:
        raise SystemExit("--runs must be at least 1 and --worker-backups at least 2")
    args.work = os.path.abspath(os.path.join(args.work, "memory"))
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if args.prepare_only:
        _trees(args)
        return None
    log = os.path.join(args.work, "commands.log")
    open(log, "w").close()
    t = time.time()
    # generated in a child: this process stays small (wait4 counts a child's size at fork)
    subprocess.run([sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]),
                    "--prepare-only"], check=True)
    trees = _trees(args)
    print(f"trees {', '.join(f'{s} MiB' for s in args.sizes)} ready in {time.time() - t:.0f}s", flush=True)
    tools = [engine.Strongroom(args.work, log)]
    if args.baseline:
        tools.append(engine.StrongroomBaseline(args.work, log, args.baseline))
    fresh = _fresh_processes(args, tools, trees)
    worker = _worker_series(args, tools, trees)
    summary = _verdicts(args, fresh, worker)
    _print_table(args, summary)
    result = {"sizes_mib": args.sizes, "runs": args.runs, "fresh": fresh, "worker": worker, "summary": summary,
              "rss_limit_mib": RSS_LIMIT_MIB, "flat_ratio": FLAT_RATIO, "drift_ratio": DRIFT_RATIO}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
