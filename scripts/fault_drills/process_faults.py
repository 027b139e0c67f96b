"""Drills that take a process away mid-work: a killed worker, a restarted broker, a restarted database."""

from __future__ import annotations

import time

from .common import MIB, say
from .outcomes import check_store, judge_jobs, settle, wait_for_jobs, wait_for_progress
from .report import Row


def drill_kill(ctx, kills: int) -> Row:
    from protection.backups import services as backups

    first = len(ctx.lab.instances)
    row = ctx.row(f"kill -9 worker mid-backup ×{kills}")
    deaths_before = ctx.fleet.deaths()
    for i in range(kills):
        # A new instance each time (Azure allows 4 on-demand backups per instance per day), with data enough
        # that the backup is still reading when the kill lands.
        instance = ctx.lab.instance(data_mib=384)
        job = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
        try:
            state = wait_for_progress(job.pk, with_worker=True)
        except TimeoutError as exc:
            row.runs += 1
            row.stuck += 1
            row.notes.append(f"run {i + 1}: {exc}")
            continue
        killed_at = time.monotonic()
        who = ctx.fleet.kill_holder(state["worker"])
        row.runs += 1
        outcomes = wait_for_jobs([job.pk], killed_at)
        judge_jobs(row, outcomes, killed_at)
        say(f"  kill {i + 1}/{kills}: {who} killed at {state['bytes_done'] / MIB:.0f} MiB; job "
            f"{outcomes[job.pk][0]['status']} after {(outcomes[job.pk][1] or time.monotonic()) - killed_at:.0f} s")
    row.deaths = ctx.fleet.deaths() - deaths_before - kills  # the kills themselves do not count
    row.notes.append(f"{kills} kills; worker deaths other than the kills: {row.deaths}")
    row.left_dead = ctx.fleet.left_dead()
    check_store(row, ctx.lab.vault, ctx.lab.instances[first:])
    return row


def drill_broker(ctx, count: int = 50) -> Row:
    from protection.backups import services as backups

    first = len(ctx.lab.instances)
    row = ctx.row(f"broker restart, {count} queued")
    say(f"  creating {count} instances")
    instances = [ctx.lab.instance(data_mib=1) for _ in range(count)]
    deaths_before = ctx.fleet.deaths()
    job_ids = [backups.backup_now(ctx.lab.trainer, i, retention_rule="Default").pk for i in instances]
    fault_at = time.monotonic()
    ctx.redis.restart()
    over_at = time.monotonic()
    row.runs = count
    outcomes = wait_for_jobs(job_ids, over_at, extra=count * 2)
    judge_jobs(row, outcomes, fault_at)
    settle(row, ctx, deaths_before, first)
    return row


def drill_database(ctx, runs: int = 1) -> Row:
    from django.db import connection

    from protection.backups import services as backups

    first = len(ctx.lab.instances)
    row = ctx.row("database restart mid-backup")
    instance = ctx.lab.instance()
    deaths_before = ctx.fleet.deaths()
    for _ in range(runs):
        ctx.lab.put(instance.drill_container, 96)
        job = backups.backup_now(ctx.lab.trainer, instance, retention_rule="Default")
        wait_for_progress(job.pk)
        fault_at = time.monotonic()
        connection.close()
        ctx.postgres.restart()
        over_at = time.monotonic()
        row.runs += 1
        judge_jobs(row, wait_for_jobs([job.pk], over_at), fault_at)
    settle(row, ctx, deaths_before, first)
    return row
