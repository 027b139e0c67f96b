"""A tens-of-MiB run of the engine benchmark, so `make bench` does not rot (not a timing test)."""
import json
import os
import subprocess
import sys

import pytest

from tests.store.helpers import ROOT, subprocess_env

RESTIC = "/usr/bin/restic"


def test_bench_smoke(tmp_path):
    args = [sys.executable, os.path.join(ROOT, "bench", "engine.py"), "--size-mib", "12",
            "--volume-gib", "0.03125", "--runs", "1", "--warmup", "0",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "engine.json")]
    if not os.path.exists(RESTIC):
        if os.environ.get("CI"):
            pytest.fail(f"{RESTIC} is required in CI")
        args.append("--no-restic")
    r = subprocess.run(args, capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((tmp_path / "engine.json").read_text())
    sr = res["runs"]["strongroom"][0]
    assert sr["restore_ok"]
    assert sr["image_restored_allocated"] < res["image"]["size"]  # restored image is sparse
    if "restic" in res["runs"]:
        assert res["runs"]["restic"][0]["restore_ok"]
        assert "ratios" in res and res["ratios"]["initial"] > 0
    assert "initial backup" in r.stdout
    assert len(res["ceiling"]) == 1 and res["ceiling"][0] > 0  # the machine's ceiling, timed beside
    if "restic" in res["runs"]:
        assert "initial backup ceiling (s)" in r.stdout and res["ratios"]["initial_vs_ceiling"] > 0
    # the S3 column (the engine on the loopback S3 server) and the GC figures
    s3 = res["runs"]["strongroom-s3"][0]
    assert s3["restore_ok"] and s3["gc_freed"] > 0 and s3["gc_report"]["snapshots"] == 3
    assert sr["gc_freed"] > 0 and sr["gc_report"]["snapshots"] == 3 and not sr["gc_report"]["errors"]
    # the image's increment: timed, and it stores about its change, not the image again
    assert sr["image_incremental"]["wall"] > 0 and 0 < sr["image_increment_store"] < sr["image_store"]
    assert "image increment backup (s)" in r.stdout and "image increment store (MiB)" in r.stdout
    assert "GC after expiring half (s)" in r.stdout and "GC bytes freed (MiB)" in r.stdout and "s3 (moto)" in r.stdout


def test_memory_bench_smoke(tmp_path):
    """`bench/memory.py` on two small trees: both ways of use are measured and judged (the
    figures themselves are for `make bench-memory`, not for a test)."""
    out = tmp_path / "memory.json"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "memory.py"), "--sizes-mib", "4,8",
                        "--runs", "1", "--worker-backups", "2", "--work", str(tmp_path / "work"), "--out", str(out)],
                       capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    s = res["summary"]["strongroom"]
    assert set(s["fresh_median_rss_mib"]) == {"4", "8"} and all(v > 0 for v in s["fresh_median_rss_mib"].values())
    assert len(s["worker_peaks_mib"]) == 2 and all(p > 0 for p in s["worker_peaks_mib"])
    assert [row["size_mib"] for row in res["worker"]["strongroom"]] == [4, 8]
    assert s["within_limit"] is (s["highest_rss_mib"] <= res["rss_limit_mib"])
    assert "one backup per process" in r.stdout and "long-lived process" in r.stdout
