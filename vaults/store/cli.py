"""Command line: ``python -m vaults.store [--store LOCATION] [--key-file F] COMMAND ...``.

The store location (a directory, or ``s3://bucket/prefix?endpoint=URL`` with credentials in
``STRONGROOM_S3_ACCESS_KEY_ID`` / ``STRONGROOM_S3_SECRET_ACCESS_KEY`` or the usual ``AWS_*``
variables) comes from ``--store`` or ``STRONGROOM_STORE``; the 32-byte platform key
from ``--key-file`` (raw 32 bytes, or 64 hex characters), or ``STRONGROOM_STORE_KEY``
(64 hex characters). Exit codes: 0 ok, 1 error, 2 usage, 3 damage found, 130 cancelled.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import threading

from .config import CONFIG
from .errors import Cancelled, DamageError, StoreError
from .location import open_backend
from .store import Store


def _key(args) -> bytes:
    raw = None
    if args.key_file:
        with open(args.key_file, "rb") as f:
            raw = f.read()
        if len(raw) != 32:
            raw = raw.strip()
    elif os.environ.get("STRONGROOM_STORE_KEY"):
        raw = os.environ["STRONGROOM_STORE_KEY"].strip().encode()
    else:
        raise SystemExit("no key: use --key-file or set STRONGROOM_STORE_KEY (64 hex characters)")
    if len(raw) == 32:
        return raw
    try:
        k = bytes.fromhex(raw.decode())
    except ValueError:
        k = b""
    if len(k) != 32:
        raise SystemExit("the store key must be 32 bytes (64 hex characters)")
    return k


def _progress_printer(enabled):
    if not enabled:
        return None

    def cb(p):
        sys.stderr.write(f"\r{p.phase}: {p.bytes_done / 1048576:10.1f} MiB  {p.items_done} items  {p.current[-50:]:<50}")
        sys.stderr.flush()
    return cb


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m vaults.store", description="Strongroom vault store engine")
    ap.add_argument("--store", default=os.environ.get("STRONGROOM_STORE"),
                    help="store directory or s3://bucket/prefix?endpoint=URL (or STRONGROOM_STORE)")
    ap.add_argument("--key-file", help="file with the 32-byte platform key (raw or hex); else STRONGROOM_STORE_KEY")
    ap.add_argument("--cache-dir", default=None, help="local index cache (default ~/.cache/strongroom/<id>)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("STRONGROOM_WORKERS", "2")))
    ap.add_argument("--progress", action="store_true", help="print progress to stderr")
    ap.add_argument("--lock-wait", type=float, default=None, help="seconds to wait for a busy store (default 3600)")
    ap.add_argument("--lock-ttl", type=float, default=None, help="seconds a lock lives without refresh (default 300)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    _add_point_commands(sub)
    _add_store_commands(sub)
    return ap


def _add_point_commands(sub) -> None:
    """Commands that make, list, read or delete recovery points."""
    sub.add_parser("init", help="create a new store")
    b = sub.add_parser("backup", help="back up a folder, '-' (stdin stream) or --volume IMAGE")
    b.add_argument("path", nargs="?")
    b.add_argument("--volume", metavar="IMAGE")
    b.add_argument("--name", default="stdin", help="item name of a stdin stream")
    b.add_argument("--source-id")
    b.add_argument("--tag", action="append", default=[])
    b.add_argument("--retain-days", type=float, help="retain the recovery point this many days")
    b.add_argument("--retention-mode", default="governance", choices=["governance", "compliance"])
    ls = sub.add_parser("list", help="list recovery points")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--source-id")
    r = sub.add_parser("restore", help="restore a recovery point ('latest' allowed); target '-' = stdout")
    r.add_argument("snapshot")
    r.add_argument("target")
    r.add_argument("--path", action="append", dest="paths", help="only this path prefix (repeatable)")
    v = sub.add_parser("verify", help="verify one recovery point ('all' or 'latest' allowed)")
    v.add_argument("snapshot", nargs="?", default="all")
    d = sub.add_parser("delete", help="delete a recovery point (refused under retention)")
    d.add_argument("snapshot")


def _add_store_commands(sub) -> None:
    """Commands that look after the store as a whole."""
    g = sub.add_parser("gc", help="collect garbage: delete unneeded packs, repack mostly-dead ones")
    g.add_argument("--safety-window", type=float, default=3600.0, metavar="SECONDS",
                   help="keep objects modified this recently (default 3600)")
    g.add_argument("--repack-threshold", type=float, default=0.5,
                   help="repack packs whose live share is below this (default 0.5)")
    g.add_argument("--dry-run", action="store_true", help="only report what would be freed")
    g.add_argument("--wait", type=float, default=600.0, help="seconds to wait for running backups (default 600)")
    g.add_argument("--json", action="store_true")
    rp = sub.add_parser("replicate", help="copy recovery points to a replica store (created if empty)")
    rp.add_argument("snapshot", help="a recovery point id, 'latest' or 'all'")
    rp.add_argument("--to", required=True, metavar="LOCATION", help="the replica's location")
    rp.add_argument("--to-key-file", help="the replica's platform key (default: the same key)")
    rp.add_argument("--to-cache-dir", default=None)
    rp.add_argument("--no-verify", action="store_true", help="skip the full verify of each copy")
    rp.add_argument("--json", action="store_true")
    sub.add_parser("locks", help="list the store's locks")


def main(argv=None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if not args.store:
        ap.error("no store: use --store or set STRONGROOM_STORE")
    cancel = threading.Event()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass

    def on_term(signum, frame):
        cancel.set()
    signal.signal(signal.SIGTERM, on_term)

    try:
        return _open_and_run(args, cancel)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except Cancelled as e:
        print(f"cancelled: {e}", file=sys.stderr)
        return 130
    except DamageError as e:
        print(f"\nDAMAGED: {e}", file=sys.stderr)
        for c in e.chunks[:50]:
            print(f"  chunk {c}", file=sys.stderr)
        return 3
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _open_and_run(args, cancel) -> int:
    key = _key(args)
    if args.cmd == "init":
        backend = open_backend(args.store, create=True)
        s = Store.init(backend, key, cache_dir=args.cache_dir, workers=args.workers)
        print(f"created store {s.id} at {backend.location}")
        s.close()
        return 0
    opts = {}
    if args.lock_wait is not None:
        opts["lock_wait"] = args.lock_wait
    if args.lock_ttl is not None:
        opts["lock_ttl"] = args.lock_ttl
    args.store_opts = opts
    store = Store.open(open_backend(args.store), key, cache_dir=args.cache_dir, workers=args.workers, **opts)
    try:
        return _run(args, store, cancel)
    finally:
        store.close()


def _resolve(store, snap):
    if snap == "latest":
        snaps = store.list_snapshots()
        if not snaps:
            raise StoreError("no recovery points")
        return snaps[-1].id
    return snap


def _run(args, store, cancel) -> int:
    prog = _progress_printer(args.progress)
    command = _COMMANDS.get(args.cmd)
    if command is None:
        return 2
    return command(args, store, cancel, prog)


def _end_progress_line(prog) -> None:
    if prog:
        sys.stderr.write("\n")


def _backup(args, store, cancel, prog) -> int:
    kw = dict(source_id=args.source_id, tags=args.tag, progress=prog, cancel=cancel)
    if args.retain_days:
        kw["retain_until"] = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=args.retain_days)
        kw["retention_mode"] = args.retention_mode
    if args.volume:
        snap = store.backup_volume(args.volume, **kw)
    elif args.path == "-":
        snap = store.backup_stream(sys.stdin.buffer, name=args.name, **kw)
    elif args.path:
        snap = store.backup_tree(args.path, **kw)
    else:
        raise SystemExit("backup needs a folder, '-' or --volume IMAGE")
    _end_progress_line(prog)
    st = snap.stats
    print(f"snapshot {snap.id} saved ({st.get('bytes_read', 0)} bytes read, "
          f"{st.get('bytes_new', 0)} new, {st.get('bytes_stored', 0)} stored)")
    return 0


def _list(args, store, cancel, prog) -> int:
    errors = []
    snaps = store.list_snapshots(source_id=args.source_id, errors=errors)
    if args.json:
        print(json.dumps([s.__dict__ for s in snaps], indent=1))
    else:
        for s in snaps:
            ret = f" retained until {s.retain_until} ({s.retention_mode})" if s.retain_until else ""
            print(f"{s.id}  {s.time[:19]}  {s.kind:6}  {s.source_id}  {' '.join(s.tags)}{ret}")
    for e in errors:
        print(f"warning: {e}", file=sys.stderr)
    return 0


def _restore(args, store, cancel, prog) -> int:
    sid = _resolve(store, args.snapshot)
    if args.target == "-":
        store.restore_stream(sid, sys.stdout.buffer, progress=prog, cancel=cancel)
    else:
        res = store.restore(sid, args.target, paths=args.paths, progress=prog, cancel=cancel)
        _end_progress_line(prog)
        print(f"restored {sid} to {args.target}: {res}", file=sys.stderr)
    return 0


def _verify(args, store, cancel, prog) -> int:
    sid = None if args.snapshot == "all" else _resolve(store, args.snapshot)
    rep = store.verify(sid, progress=prog, cancel=cancel)
    _end_progress_line(prog)
    print(f"checked {len(rep.snapshot_ids)} snapshot(s), {rep.chunks_checked} chunks, {rep.bytes_checked} bytes")
    for e in rep.errors:
        print(f"ERROR: {e}")
    for c in rep.missing_chunks:
        print(f"MISSING chunk {c}")
    for c in rep.damaged_chunks:
        print(f"DAMAGED chunk {c}")
    for i in rep.damaged_items:
        print(f"DAMAGED item {i}")
    print("ok" if rep.ok else "DAMAGE FOUND")
    return 0 if rep.ok else 3


def _delete(args, store, cancel, prog) -> int:
    store.delete_snapshot(args.snapshot)
    print(f"deleted {args.snapshot}")
    return 0


def _gc(args, store, cancel, prog) -> int:
    rep = store.gc(safety_window=dt.timedelta(seconds=args.safety_window),
                   repack_threshold=args.repack_threshold, dry_run=args.dry_run, wait=args.wait,
                   progress=prog, cancel=cancel)
    _end_progress_line(prog)
    if args.json:
        print(json.dumps(rep.as_dict(), indent=1, default=str))
    else:
        print(rep.summary())
        for b in rep.locks_broken:
            print(f"broke stale lock: {b}")
        for e in rep.errors:
            print(f"ERROR: {e}")
    return 0 if not rep.errors else 3


def _replicate(args, store, cancel, prog) -> int:
    key = _key(argparse.Namespace(key_file=args.to_key_file)) if args.to_key_file else _key(args)
    backend = open_backend(args.to, create=True)
    if backend.exists(CONFIG):
        target = Store.open(backend, key, cache_dir=args.to_cache_dir, workers=args.workers, **args.store_opts)
    else:
        target = Store.init_replica(backend, store, key, cache_dir=args.to_cache_dir, workers=args.workers,
                                    **args.store_opts)
        print(f"created replica store {target.id} at {backend.location}")
    try:
        if args.snapshot == "all":
            ids = [s.id for s in store.list_snapshots()]
        else:
            ids = [_resolve(store, args.snapshot)]
        failed = False
        for sid in ids:
            rep = store.replicate(sid, target, verify=not args.no_verify, progress=prog, cancel=cancel)
            _end_progress_line(prog)
            print(json.dumps(rep.as_dict(), default=str) if args.json else rep.summary())
            for e in rep.verify_errors:
                print(f"ERROR: {e}")
            failed = failed or rep.verified is False
        return 3 if failed else 0
    finally:
        target.close()


def _locks(args, store, cancel, prog) -> int:
    for info in store.locks():
        print(("STALE " if info.stale() else "") + info.describe())
    return 0


_COMMANDS = {"backup": _backup, "list": _list, "restore": _restore, "verify": _verify, "delete": _delete,
             "gc": _gc, "replicate": _replicate, "locks": _locks}
