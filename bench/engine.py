#!/usr/bin/env python3
"""Benchmark: Strongroom's vault store engine (local directory and S3) vs restic (Debian's, its defaults).

    .venv/bin/python bench/engine.py --size-mib 1024 --volume-gib 2 --runs 3 --out var/bench/engine.json

For each run and each tool (interleaved, order alternating, after a warm-up run per tool):
fresh repository; initial backup of a seeded ~size-MiB tree; ~5% mutation; incremental backup;
full restore of the incremental; backup and restore of a sparse volume image; a day's change to
the image (8 scattered 256 KiB writes per GiB) and its incremental backup (time and store growth);
another ~5% mutation and backup; then the older half of the five recovery points expires and garbage
collection runs (Strongroom: ``delete`` x2 + ``gc``; restic: ``forget`` + ``prune``), timed, with
the bytes it freed. Wall time and peak RSS per command (os.wait4), repository size. Both tools
fsync their writes. Medians of the runs, ratios Strongroom / restic, targets from issue 3.

Beside each run's initial backups, bench/ceiling.py times the bare work of one (read, hash,
compress, encrypt, write + fsync on two processes) on the same tree: the machine's ceiling,
printed with the engine's time over it (skip with ``--no-ceiling``).

Columns: ``strongroom`` (local directory), ``strongroom-s3`` (the same engine on an S3 API
server on loopback: moto's server mode, started here in its own process; skip with
``--no-s3``), ``restic``. The ratios compare the local column with restic.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import dataset  # noqa: E402

KEYHEX = "5a" * 32
PHASES = ["initial", "incremental", "restore", "image_backup", "image_restore", "image_incremental", "incremental2",
          "gc"]
TARGETS = {"initial": 0.6, "incremental": 0.6, "restore": 0.6, "image_backup": 0.8, "store_size": 1.0,
           "image_store": 1.0}  # issue 22
RSS_LIMIT_MIB = 128
CEILING_TARGET = 1.5  # the initial backup within 1.5x of bench/ceiling.py's time


def du(path):
    total = 0
    for dp, dn, fn in os.walk(path):
        for f in fn:
            try:
                total += os.lstat(os.path.join(dp, f)).st_size
            except FileNotFoundError:
                pass
    return total


def _hash_contents(h, path):
    """Feed a file's bytes to ``h`` in 4 MiB reads."""
    with open(path, "rb") as fh:
        while b := fh.read(1 << 22):
            h.update(b)


def tree_digest(root):
    h = hashlib.blake2b()
    for dp, dn, fn in os.walk(root):
        dn.sort()
        for f in sorted(fn):
            p = os.path.join(dp, f)
            h.update(os.path.relpath(p, root).encode("utf-8", "surrogateescape"))
            _hash_contents(h, p)
    return h.hexdigest()


def file_digest(p):
    h = hashlib.blake2b()
    _hash_contents(h, p)
    return h.hexdigest()


def measure(cmd, env, log, stdout=None):
    """Run ``cmd``; returns (wall seconds, peak RSS MiB, stdout text)."""
    os.sync()  # start every timed command with no dirty pages left by the previous one (untimed)
    with open(log, "ab") as lf:
        lf.write(("\n$ " + " ".join(cmd) + "\n").encode())
        lf.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=lf)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        lf.write(out[-4000:])
    if p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}; see {log}")
    return wall, ru.ru_maxrss / 1024.0, out.decode(errors="replace")


class Tool:
    name = "?"

    def store_size(self):
        return du(self.repo)

    def __init__(self, work, log):
        self.work = work
        self.log = log
        self.repo = os.path.join(work, f"repo-{self.name}")
        self.cache = os.path.join(work, f"cache-{self.name}")
        self.commands = {}

    def run(self, phase, cmd):
        self.commands.setdefault(phase, " ".join(cmd))
        return measure(cmd, self.env(), self.log)

    def reset(self):
        for d in (self.repo, self.cache):
            shutil.rmtree(d, ignore_errors=True)


class Strongroom(Tool):
    name = "strongroom"

    def env(self):
        e = dict(os.environ)
        e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
        e["STRONGROOM_STORE_KEY"] = KEYHEX
        e.pop("STRONGROOM_FAULT_KILL_AFTER_BYTES", None)
        return e

    def base(self):
        return [sys.executable, "-m", "vaults.store", "--store", self.repo, "--cache-dir", self.cache]

    def init(self):
        self.points = []
        self.run("init", self.base() + ["init"])

    def backup(self, phase, src):
        w, r, out = self.run(phase, self.base() + ["backup", src])
        self.last = out.split()[1]
        self.points.append(self.last)
        return w, r

    def expire_and_gc(self):
        """Delete the older half of the recovery points, then collect garbage (timed)."""
        wd, rd = 0.0, 0.0
        for sid in self.points[:len(self.points) // 2]:
            w, r, _ = self.run("gc (delete)", self.base() + ["delete", sid])
            wd, rd = wd + w, max(rd, r)
        w, r, out = self.run("gc", self.base() + ["gc", "--safety-window", "0", "--json"])
        self.gc_report = json.loads(out)
        return wd + w, max(rd, r)

    def backup_image(self, img, phase="image_backup"):
        w, r, out = self.run(phase, self.base() + ["backup", "--volume", img])
        self.last_img = out.split()[1]
        self.points.append(self.last_img)
        return w, r

    def restore(self, phase, target, image=False):
        sid = self.last_img if image else self.last
        if image:
            os.makedirs(target, exist_ok=True)
            target = os.path.join(target, "image.img")
        w, r, _ = self.run(phase, self.base() + ["restore", sid, target])
        return w, r

    def restored_tree(self, target, src):
        return target

    def restored_image(self, target, img):
        return os.path.join(target, "image.img")


class StrongroomBaseline(Strongroom):
    """The engine of another checkout (``--baseline DIR``, e.g. ``git worktree add`` of the commit
    before a change): before/after and restic in one interleaved run, under the same load."""

    name = "baseline"

    def __init__(self, work, log, root):
        self.root = os.path.abspath(root)
        super().__init__(work, log)

    def env(self):
        e = super().env()
        e["PYTHONPATH"] = self.root + os.pathsep + os.environ.get("PYTHONPATH", "")
        return e

    def base(self):
        # -P: `python -m` would put the working directory (maybe the other checkout) first
        return [sys.executable, "-P", "-m", "vaults.store", "--store", self.repo, "--cache-dir", self.cache]


class StrongroomS3(Strongroom):
    """The same engine with the store in a bucket on a loopback S3 server (one prefix per run)."""

    name = "strongroom-s3"

    def __init__(self, work, log, endpoint, bucket):
        self.endpoint = endpoint
        self.bucket = bucket
        self.n = 0
        super().__init__(work, log)
        self.reset()

    def env(self):
        e = super().env()
        e.update(S3_ENV)
        return e

    def reset(self):
        shutil.rmtree(self.cache, ignore_errors=True)
        if self.n:  # drop the previous run's objects (moto keeps them in temp files)
            s3util(self.endpoint, "purge", self.bucket, self.prefix)
        self.n += 1
        self.prefix = f"run{self.n}"
        self.repo = f"s3://{self.bucket}/{self.prefix}?endpoint={self.endpoint}"

    def store_size(self):
        return int(s3util(self.endpoint, "size", self.bucket, self.prefix))


S3_ENV = {"STRONGROOM_S3_ACCESS_KEY_ID": "bench", "STRONGROOM_S3_SECRET_ACCESS_KEY": "bench-secret"}


def s3util(*args):
    """S3 chores in a separate process: this process must stay small (see s3util.py)."""
    r = subprocess.run([sys.executable, os.path.join(HERE, "s3util.py"), *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"s3util {' '.join(args)} failed: {r.stderr}")
    return r.stdout


class MotoServer:
    """moto's S3 server mode in its own process on 127.0.0.1 (objects spill to temp files)."""

    def __init__(self, work):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env["TMPDIR"] = os.path.join(work, "moto-tmp")
        os.makedirs(env["TMPDIR"], exist_ok=True)
        self.logf = open(os.path.join(work, "moto.log"), "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        import urllib.request
        for _ in range(200):
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1)
                break
            except Exception:
                if self.proc.poll() is not None:
                    raise SystemExit(f"moto server did not start; see {self.logf.name}")
                time.sleep(0.1)
        self.bucket = "strongroom-bench"
        s3util(self.endpoint, "create-bucket", self.bucket)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.logf.close()


class Restic(Tool):
    name = "restic"

    def __init__(self, work, log, binary):
        self.binary = binary
        super().__init__(work, log)

    def env(self):
        e = dict(os.environ)
        e["RESTIC_PASSWORD"] = "bench-password"
        e["RESTIC_CACHE_DIR"] = self.cache
        return e

    def base(self):
        return [self.binary, "-r", self.repo]

    def init(self):
        self.run("init", self.base() + ["init"])

    def backup(self, phase, src):
        w, r, _ = self.run(phase, self.base() + ["backup", "--host", "bench", src])
        return w, r

    def expire_and_gc(self):
        _, _, out = measure(self.base() + ["snapshots", "--json"], self.env(), self.log)
        snaps = sorted(json.loads(out), key=lambda s: s["time"])
        old = [s["id"] for s in snaps[:len(snaps) // 2]]
        w1, r1, _ = self.run("gc", self.base() + ["forget", *old])
        w2, r2, _ = self.run("gc (prune)", self.base() + ["prune"])
        return w1 + w2, max(r1, r2)

    def backup_image(self, img, phase="image_backup"):
        w, r, _ = self.run(phase, self.base() + ["backup", "--host", "bench", img])
        return w, r

    def restore(self, phase, target, image=False):
        path = self.img if image else self.src
        w, r, _ = self.run(phase, self.base() + ["restore", "latest", "--host", "bench", "--path", path,
                                                  "--target", target])
        return w, r

    def restored_tree(self, target, src):
        return os.path.join(target, src.lstrip("/"))

    def restored_image(self, target, img):
        return os.path.join(target, img.lstrip("/"))


def one_run(tool, args, pristine, pristine_img, check):
    work = args.work
    src = os.path.join(work, "src")
    img = os.path.join(work, "volume.img")  # this run's copy: its increment changes it
    tool.src, tool.img = src, img
    tool.reset()
    dataset.copy_tree(pristine, src)
    subprocess.run(["cp", "--sparse=always", pristine_img, img], check=True)
    time.sleep(2.5)  # out of the racy window of a just-copied tree (untimed)
    tool.init()
    res = {}
    res["initial"] = tool.backup("initial", src)
    size_initial = tool.store_size()
    dataset.mutate(src, seed=args.seed + 1)
    res["incremental"] = tool.backup("incremental", src)
    size_after = tool.store_size()
    tgt = os.path.join(work, "restore")
    shutil.rmtree(tgt, ignore_errors=True)
    res["restore"] = tool.restore("restore", tgt)
    ok = True
    if check:
        ok = tree_digest(tool.restored_tree(tgt, src)) == tree_digest(src)
    shutil.rmtree(tgt, ignore_errors=True)
    res["image_backup"] = tool.backup_image(img)
    size_img = tool.store_size() - size_after
    res["image_restore"] = tool.restore("image_restore", tgt, image=True)
    rimg = tool.restored_image(tgt, img)
    img_blocks = os.stat(rimg).st_blocks * 512
    if check:
        ok = ok and file_digest(rimg) == file_digest(img)
    shutil.rmtree(tgt, ignore_errors=True)
    dataset.mutate_image(img, seed=args.seed + 3)
    before_incr = tool.store_size()
    res["image_incremental"] = tool.backup_image(img, "image_incremental")
    size_img_incr = tool.store_size() - before_incr
    os.unlink(img)
    dataset.mutate(src, seed=args.seed + 2)
    res["incremental2"] = tool.backup("incremental2", src)
    size_before_gc = tool.store_size()
    res["gc"] = tool.expire_and_gc()
    gc_freed = size_before_gc - tool.store_size()
    out = {p: {"wall": res[p][0], "rss_mib": res[p][1]} for p in PHASES}
    out.update(store_initial=size_initial, store_size=size_after, image_store=size_img,
               image_increment_store=size_img_incr,
               image_restored_allocated=img_blocks, restore_ok=ok, store_before_gc=size_before_gc,
               gc_freed=gc_freed, peak_rss_mib=max(res[p][1] for p in PHASES))
    if hasattr(tool, "gc_report"):
        out["gc_report"] = tool.gc_report
    tool.reset()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--volume-gib", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", default=os.path.join(ROOT, "var", "bench", "work"))
    ap.add_argument("--out", default=os.path.join(ROOT, "var", "bench", "engine.json"))
    ap.add_argument("--restic", default="/usr/bin/restic")
    ap.add_argument("--no-restic", action="store_true", help="only the Strongroom side")
    ap.add_argument("--no-s3", action="store_true", help="no S3 column (the engine on a loopback S3 server)")
    ap.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-check", action="store_true", help="skip checking restored bytes")
    ap.add_argument("--no-ceiling", action="store_true", help="do not time bench/ceiling.py beside each run")
    ap.add_argument("--baseline", metavar="DIR", help="also run the engine of this checkout (a 'baseline' column)")
    args = ap.parse_args(argv)
    args.work = os.path.abspath(args.work)
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    log = os.path.join(args.work, "commands.log")
    open(log, "w").close()

    pristine = os.path.join(args.work, f"data-{args.size_mib}-{args.seed}")
    img = os.path.join(args.work, f"volume-{args.volume_gib}g.img")
    t = time.time()
    if not args.prepare_only and not (os.path.exists(pristine + ".done") and os.path.exists(img + ".done")):
        # generate in a child: this process stays small, and so does every measured child's
        # peak RSS (wait4 counts a child's size at fork, which is this process's size)
        subprocess.run([sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]),
                        "--prepare-only"], check=True)
    if not os.path.exists(pristine + ".done"):
        shutil.rmtree(pristine, ignore_errors=True)
        info = dataset.make_tree(pristine, args.size_mib, args.seed)
        json.dump(info, open(pristine + ".done", "w"))
    info = json.load(open(pristine + ".done"))
    if not os.path.exists(img + ".done"):
        iinfo = dataset.make_image(img, args.volume_gib, args.seed)
        json.dump(iinfo, open(img + ".done", "w"))
    iinfo = json.load(open(img + ".done"))
    if args.prepare_only:
        return None
    print(f"dataset: {info['files']} files, {info['bytes'] / 2**20:.0f} MiB; image {iinfo['size'] / 2**30:.2f} GiB "
          f"({iinfo['data_written'] / 2**20:.0f} MiB data); prepared in {time.time() - t:.0f}s", flush=True)

    tools = [Strongroom(args.work, log)]
    if args.baseline:
        tools.append(StrongroomBaseline(args.work, log, args.baseline))
    moto = None
    if not args.no_s3:
        moto = MotoServer(args.work)
        tools.append(StrongroomS3(args.work, log, moto.endpoint, moto.bucket))
    if not args.no_restic:
        if not os.path.exists(args.restic):
            raise SystemExit(f"{args.restic} not found (use --no-restic to run the Strongroom side only)")
        tools.append(Restic(args.work, log, args.restic))
    runs = {t.name: [] for t in tools}
    runs["ceiling"] = []
    try:
        _runs(args, tools, runs, pristine, img, log)
    finally:
        if moto is not None:
            moto.stop()
    return _report(args, tools, runs, info, iinfo)


def ceiling(args, pristine, log):
    """Wall seconds of bench/ceiling.py on the tree (its output removed afterwards)."""
    out = os.path.join(args.work, "ceiling")
    shutil.rmtree(out, ignore_errors=True)
    w, _, _ = measure([sys.executable, os.path.join(HERE, "ceiling.py"), pristine, out], dict(os.environ), log)
    shutil.rmtree(out, ignore_errors=True)
    return w


def _runs(args, tools, runs, pristine, img, log):
    for i in range(args.warmup + args.runs):
        order = tools if i % 2 == 0 else list(reversed(tools))
        if not args.no_ceiling and i >= args.warmup:
            runs["ceiling"].append(ceiling(args, pristine, log))
            print(f"run {i - args.warmup + 1} ceiling    initial={runs['ceiling'][-1]:.2f}s", flush=True)
        for tool in order:
            warm = i < args.warmup
            r = one_run(tool, args, pristine, img, check=not args.no_check)
            print(f"{'warm-up' if warm else f'run {i - args.warmup + 1}'} {tool.name:10} " +
                  " ".join(f"{p}={r[p]['wall']:.2f}s" for p in PHASES) +
                  f" rss={r['peak_rss_mib']:.0f}MiB store={r['store_size'] / 2**20:.0f}MiB ok={r['restore_ok']}",
                  flush=True)
            if not r["restore_ok"]:
                raise SystemExit(f"{tool.name}: restored data differs from the source")
            if not warm:
                runs[tool.name].append(r)


def _report(args, tools, runs, info, iinfo):
    def med(name, key, sub=None):
        vals = [(r[key][sub] if sub else r[key]) for r in runs[name]]
        return statistics.median(vals)

    summary = {}
    for t in tools:
        s = {p: med(t.name, p, "wall") for p in PHASES}
        s.update({f"{p}_rss_mib": med(t.name, p, "rss_mib") for p in PHASES})
        s.update(peak_rss_mib=med(t.name, "peak_rss_mib"), store_size=med(t.name, "store_size"),
                 image_store=med(t.name, "image_store"),
                 image_increment_store=med(t.name, "image_increment_store"),
                 image_restored_allocated=med(t.name, "image_restored_allocated"),
                 store_before_gc=med(t.name, "store_before_gc"), gc_freed=med(t.name, "gc_freed"))
        summary[t.name] = s
    print("\ncommand lines:")
    for t in tools:
        for phase, cmd in t.commands.items():
            print(f"  [{t.name} {phase}] {cmd}")
    rows = [("initial backup (s)", "initial"), ("incremental backup (s)", "incremental"),
            ("full restore (s)", "restore"), ("sparse image backup (s)", "image_backup"),
            ("sparse image restore (s)", "image_restore"), ("image increment backup (s)", "image_incremental"),
            ("peak RSS (MiB)", "peak_rss_mib"),
            ("store size (MiB)", "store_size"), ("image store (MiB)", "image_store"),
            ("image increment store (MiB)", "image_increment_store"),
            ("restored image allocated (MiB)", "image_restored_allocated"),
            ("2nd incremental backup (s)", "incremental2"),
            ("GC after expiring half (s)", "gc"), ("GC peak RSS (MiB)", "gc_rss_mib"),
            ("store before GC (MiB)", "store_before_gc"), ("GC bytes freed (MiB)", "gc_freed")]
    ratios = {}
    mib_keys = ("store_size", "image_store", "image_increment_store", "image_restored_allocated", "store_before_gc",
                "gc_freed")
    s3 = "strongroom-s3" in summary
    base = "baseline" in summary
    print(f"\nmedians of {args.runs} run(s), {args.size_mib} MiB tree, {args.volume_gib} GiB image")
    print(f"{'metric':32} {'strongroom':>12}" + (f" {'s3 (moto)':>12}" if s3 else "") +
          (f" {'baseline':>12} {'b.ratio':>7}" if base else "") + f" {'restic':>12} {'ratio':>7}  target")
    for label, key in rows:
        a = summary["strongroom"][key]
        scale = 2**20 if key in mib_keys else 1
        line = f"{label:32} {a / scale:12.2f}"
        if s3:
            line += f" {summary['strongroom-s3'][key] / scale:12.2f}"
        if base:
            bv = summary["baseline"][key]
            rb = summary["restic"][key] if "restic" in summary else 0
            line += f" {bv / scale:12.2f} {(bv / rb if rb else float('nan')):7.2f}"
            if rb:
                ratios[f"baseline_{key}"] = bv / rb
        if "restic" in summary:
            b = summary["restic"][key]
            ratio = a / b if b else float("nan")
            ratios[key] = ratio
            tgt = TARGETS.get(key)
            verdict = ""
            if tgt is not None:
                verdict = f"<= {tgt}  {'met' if ratio <= tgt else 'MISSED'}"
            elif key == "peak_rss_mib":
                verdict = f"<= {RSS_LIMIT_MIB} MiB  {'met' if a <= RSS_LIMIT_MIB else 'MISSED'}"
            line += f" {b / scale:12.2f} {ratio:7.2f}  {verdict}"
        print(line)
    if runs["ceiling"] and "strongroom" in summary:
        c = statistics.median(runs["ceiling"])
        r = summary["strongroom"]["initial"] / c
        ratios["initial_vs_ceiling"] = r
        print(f"{'initial backup ceiling (s)':32} {c:12.2f}  strongroom initial / ceiling {r:.2f}  "
              f"target <= {CEILING_TARGET}  {'met' if r <= CEILING_TARGET else 'MISSED'}")
    result = {"args": vars(args), "dataset": info, "image": iinfo,
              "commands": {t.name: t.commands for t in tools}, "runs": runs, "median": summary,
              "ratios": ratios, "targets": TARGETS, "rss_limit_mib": RSS_LIMIT_MIB,
              "ceiling": runs["ceiling"],
              "restic_version": subprocess.run([args.restic, "version"], capture_output=True, text=True).stdout.strip()
              if not args.no_restic else None}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
