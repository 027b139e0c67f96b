"""The activity log's hash chain (security.chain): a clean chain verifies; an entry edited, deleted or inserted
behind Strongroom's back is found and named; PostgreSQL's trigger refuses UPDATE, DELETE and TRUNCATE;
deleting a principal keeps its name on its entries; concurrent writers never fork the chain; the hourly task
raises one alert per break; the migration chains an installation's existing entries; the command's exit
status; the Activity log page shows the chain's state.

Tampering is done as an attacker with rights on the database would: raw SQL, with the trigger disabled
(`ALTER TABLE … DISABLE TRIGGER …`) and enabled again after. SQLite has no trigger.
"""

from __future__ import annotations

import collections
import contextlib
import io
import multiprocessing
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.urls import reverse
from django.utils import timezone

from security import chain, chain_check, scopes
from security import operations as ops
from security.audit import record
from security.models import ActivityLogCheck, ActivityLogEntry, ActivityLogHead, Alert, Principal

TABLE = ActivityLogEntry._meta.db_table
TRIGGER = "security_activitylogentry_append_only"
TRUNCATE_TRIGGER = "security_activitylogentry_no_truncate"
OPERATION = "Strongroom.ChainTest/things/write"


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def actor(db):
    return Principal.objects.create(kind=Principal.Kind.USER, display_name=f"Chain Tester {uuid.uuid4().hex[:6]}")


def write(principal, count: int, **details) -> list[ActivityLogEntry]:
    """``count`` entries through record(), sealed as their commit would (a test's transaction never commits)."""
    written = [record(principal, OPERATION, "/subscriptions/chain-test", status=ActivityLogEntry.Status.SUCCEEDED,
                      details={"i": i, **details}) for i in range(count)]
    chain.seal_pending()
    return [ActivityLogEntry.objects.get(pk=entry.pk) for entry in written]


@contextlib.contextmanager
def trigger_disabled():
    """As someone with rights on the database: the append-only trigger off for the block, on again after."""
    if on_postgres():
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {TRIGGER}")
    try:
        yield
    finally:
        if on_postgres():
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {TRIGGER}")


def tamper(sql: str, params=()) -> None:
    with trigger_disabled(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_raw(**values) -> None:
    """INSERT one row with every column given (no model, no chain)."""
    fields = [f for f in ActivityLogEntry._meta.concrete_fields if f.attname != "id"]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    params = [f.get_db_prep_value(values[f.attname], connection, prepared=False) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", params)


def forged(sequence: int, previous_hash: str, *, key: bytes | None = b"not the installation's key" * 2) -> dict:
    """A made-up entry #``sequence`` linked to ``previous_hash``, its hash computed with ``key`` (an attacker
    without the master key has only a wrong one; None: the right one, as if the key were stolen too)."""
    values = {name: getattr(ActivityLogEntry.objects.order_by("sequence").first(), name) for name in chain.HASHED}
    values.update(message="Nothing to see here", correlation_id=uuid.uuid4(), uid=uuid.uuid4())
    mac = chain.content_mac(values, key[:64] if key else None)
    digest = chain.link_hash(sequence, previous_hash, mac, key[:64] if key else None)
    return {**values, "sequence": sequence, "previous_hash": previous_hash, "entry_hash": digest, "content_mac": mac}


def as_a_new_transaction() -> None:
    """Forget the seal the test's transaction has registered already (for the fixtures' entries), as at the start of
    a transaction of its own: the test's never commits, so only a capture runs what its block registers."""
    connection.run_on_commit[:] = [item for item in connection.run_on_commit if item[1] is not chain._seal_committed]


def unsealed(values: dict) -> dict:
    return {**values, "sequence": None, "previous_hash": "", "entry_hash": ""}


def hash_of(sequence: int) -> str:
    return ActivityLogEntry.objects.values_list("entry_hash", flat=True).get(sequence=sequence)


def first_break(**kwargs) -> chain.Break | None:
    return chain.walk(**kwargs).first_break


# --- a clean chain ----------------------------------------------------------------------------------------


def test_a_clean_chain_verifies_and_links_every_entry_to_the_one_before(actor):
    """GIVEN entries written through record() WHEN the chain is walked THEN it is unbroken, numbered from 1,
    each entry linked to its predecessor's hash, and the head names the newest."""
    entries = write(actor, 5)
    walked = chain.walk()
    assert walked.clean and walked.entries == 5 and walked.last_sequence == 5
    assert [e.sequence for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].previous_hash == chain.GENESIS
    assert all(b.previous_hash == a.entry_hash for a, b in zip(entries, entries[1:]))
    assert len({e.entry_hash for e in entries}) == 5 and all(len(e.entry_hash) == 64 for e in entries)
    head = ActivityLogHead.objects.get()
    assert (head.sequence, head.entry_hash) == (5, entries[-1].entry_hash)


def test_what_is_stored_is_what_was_hashed(actor):
    """GIVEN details with a tuple, a non-text key, a large float and text with NUL WHEN written and read back
    THEN the hash recomputed from the stored row matches (the canonical form survives the database)."""
    entry = record(actor, OPERATION, "/subscriptions/chain-test\x00", status="Succeeded", message="nul\x00here",
                   details={"tuple": (1, 2), 3: "three", "big": 1e20, "small": 1.5e-07, "nested": {"é": [None, True]}})
    assert chain.seal_pending() == 1
    stored = ActivityLogEntry.objects.get(pk=entry.pk)
    values = {name: getattr(stored, name) for name in chain.HASHED}
    assert chain.content_mac(values) == stored.content_mac == entry.content_mac
    assert chain.compute_hash(stored.sequence, stored.previous_hash, values) == stored.entry_hash
    assert chain.walk().clean


def test_role_playing_keeps_both_actors_as_text(lab):
    """GIVEN the trainer playing the backup admin WHEN an entry is written THEN it keeps the persona's id and name
    and the real actor's, as text."""
    from security import context

    admin = lab.personas["backup-admin"].principal
    with context.acting(real_actor=lab.trainer, played_as="Backup admin"):
        entry = record(admin, OPERATION, "/", status="Succeeded")
    assert (entry.principal_ref, entry.principal_name) == (str(admin.pk), admin.display_name)
    assert (entry.actor_ref, entry.actor_name) == (str(lab.trainer.pk), lab.trainer.display_name)
    assert entry.caller == f"{lab.trainer.display_name} as Backup admin"
    assert ActivityLogEntry.objects.filter(principal=admin, operation=OPERATION).get() == entry  # the old way too


# --- tampering is found -------------------------------------------------------------------------------------


def test_an_edited_entry_is_found(actor):
    """GIVEN six entries WHEN entry #3's message is changed in the database THEN the walk names entry #3, edited."""
    write(actor, 6)
    tamper(f"UPDATE {TABLE} SET message = %s WHERE sequence = 3", ["nothing happened"])
    found = first_break()
    assert (found.kind, found.sequence) == (chain.EDITED, 3), found
    assert "no longer matches its hash" in found.detail


def test_an_edited_actor_is_found(actor):
    """GIVEN entries WHEN who did entry #2 is rewritten (id and name) THEN entry #2 is found edited."""
    write(actor, 4)
    tamper(f"UPDATE {TABLE} SET principal_ref = %s, principal_name = %s, caller = %s WHERE sequence = 2",
           [str(uuid.uuid4()), "Somebody Else", "Somebody Else"])
    found = first_break()
    assert (found.kind, found.sequence) == (chain.EDITED, 2)


def test_a_deleted_entry_is_found(actor):
    """GIVEN six entries WHEN #3 is deleted THEN the walk names #3, deleted (a gap in the sequence)."""
    write(actor, 6)
    tamper(f"DELETE FROM {TABLE} WHERE sequence = 3")
    found = first_break()
    assert (found.kind, found.sequence) == (chain.DELETED, 3)
    assert "Entry #3 is missing" in found.detail


def test_a_deleted_entry_is_found_when_the_rest_is_renumbered(actor):
    """GIVEN six entries WHEN #3 is deleted and the later ones renumbered to close the gap THEN #3 is named,
    deleted: its successor links to an entry that is gone."""
    write(actor, 6)
    tamper(f"DELETE FROM {TABLE} WHERE sequence = 3")
    tamper(f"UPDATE {TABLE} SET sequence = sequence - 1 WHERE sequence > 3")
    found = first_break()
    assert (found.kind, found.sequence) == (chain.DELETED, 3)


def test_the_newest_entries_deleted_are_found_by_the_head(actor):
    """GIVEN six entries WHEN the newest two are deleted THEN the walk says #5–#6 are missing (the head records #6)."""
    write(actor, 6)
    tamper(f"DELETE FROM {TABLE} WHERE sequence >= 5")
    found = first_break()
    assert (found.kind, found.sequence) == (chain.DELETED, 5)
    assert "#5–#6" in found.detail


def test_the_newest_entries_and_the_head_cut_together_are_found_by_the_last_check(actor):
    """GIVEN a clean check of six entries WHEN the newest two are deleted and the head rewound to #4 THEN the
    next check finds #5 deleted (the last clean check remembers #6)."""
    write(actor, 6)
    assert chain_check.run_check().state == ActivityLogCheck.State.VERIFIED
    tamper(f"DELETE FROM {TABLE} WHERE sequence >= 5")
    ActivityLogHead.objects.filter(pk=1).update(sequence=4, entry_hash=hash_of(4))
    assert first_break() is None  # the chain alone is consistent…
    check = chain_check.run_check()  # …but not with what was verified before
    assert (check.state, check.break_kind, check.break_sequence) == ("Broken", chain.DELETED, 5)


def test_a_deleted_head_is_found(actor):
    """GIVEN entries WHEN the chain's head row is deleted THEN the walk reports it; the next append makes the head
    again from the newest entry and the chain goes on."""
    write(actor, 3)
    ActivityLogHead.objects.all().delete()
    found = first_break()
    assert (found.kind, found.sequence) == (chain.DELETED, 4) and "head record was deleted" in found.detail
    [entry] = write(actor, 1)
    assert entry.sequence == 4 and first_break() is None


@pytest.mark.parametrize("stolen_key", [False, True], ids=["forged-hash", "stolen-key"])
def test_an_entry_added_after_the_newest_is_found(actor, stolen_key):
    """GIVEN five entries WHEN a row #6 is INSERTed, linked to #5 (its hash forged, or even computed with the
    real key) THEN the walk names #6, inserted: the chain's head never recorded it."""
    write(actor, 5)
    insert_raw(**forged(6, hash_of(5), key=None if stolen_key else b"k" * 32))
    found = first_break()
    assert (found.kind, found.sequence) == (chain.INSERTED, 6), found


def test_an_entry_inserted_in_the_middle_is_found(actor):
    """GIVEN five entries WHEN the entries from #3 are renumbered one up and a row is INSERTed as #3, linked to #2
    THEN the walk names #3, inserted (the entry after it still links to #2)."""
    write(actor, 5)
    tamper(f"UPDATE {TABLE} SET sequence = -sequence WHERE sequence >= 3")
    tamper(f"UPDATE {TABLE} SET sequence = 1 - sequence WHERE sequence < 0")
    insert_raw(**forged(3, hash_of(2)))
    found = first_break()
    assert (found.kind, found.sequence) == (chain.INSERTED, 3), found


# --- the database refuses ----------------------------------------------------------------------------------------


def test_the_trigger_refuses_update_delete_and_truncate(actor):
    """GIVEN PostgreSQL WHEN an entry is UPDATEd or DELETEd (or the table TRUNCATEd) with SQL THEN the trigger
    refuses, saying the log is append-only, and the entry is unchanged."""
    if not on_postgres():
        pytest.skip("The trigger is PostgreSQL's; on SQLite the model refuses and the chain detects the rest.")
    [entry] = write(actor, 1)
    statements = [f"UPDATE {TABLE} SET message = 'x' WHERE id = %s", f"DELETE FROM {TABLE} WHERE id = %s"]
    for sql in statements:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])
    refused = pytest.raises(DatabaseError, match="append-only: TRUNCATE")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL strongroom.allow_activity_log_truncate = 'off'")  # as an installation's session
        cursor.execute(f"TRUNCATE {TABLE}")
    assert ActivityLogEntry.objects.get(pk=entry.pk).message == entry.message
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgenabled = 'O'", [TABLE])
        assert {row[0] for row in cursor.fetchall()} == {TRIGGER, TRUNCATE_TRIGGER}


def test_deleting_a_vault_and_its_identity_keeps_the_identitys_entries_whole(lab, trainer):
    """GIVEN a vault whose managed identity has entries of its own WHEN the vault is deleted (its identity with it)
    THEN the deletion works, the identity's entries keep its id and name, and the chain is unbroken."""
    from vaults import services as vault_services

    vault = vault_services.create_vault(trainer, name=f"bv-chain-{uuid.uuid4().hex[:6]}", region=lab.region,
                                        resource_group=lab.lab_group)
    identity = vault.identity
    [by_identity] = write(identity, 1)
    vault_services.delete_vault(trainer, vault)
    assert not Principal.objects.filter(pk=identity.pk).exists()
    entry = ActivityLogEntry.objects.get(pk=by_identity.pk)
    assert (entry.principal_ref, entry.principal_name) == (str(identity.pk), identity.display_name)
    assert entry.principal is None and entry.principal_id == identity.pk
    assert ActivityLogEntry.objects.filter(principal=identity, operation=OPERATION).count() == 1
    assert chain.walk().clean


# --- concurrent writers --------------------------------------------------------------------------------------


def _append_from_process(principal_pk: str, writer: int, count: int, start) -> None:
    """A writer process of its own (its own connection), waiting for the others before appending."""
    principal = Principal.objects.get(pk=principal_pk)
    start.wait(60)
    for i in range(count):
        if i % 10 < 5:
            write_one(principal, writer, i)
        else:  # as a guarded block does: in the writer's own transaction, with other writes before
            with transaction.atomic():
                Principal.objects.filter(pk=principal_pk).exists()
                write_one(principal, writer, i)
    connections.close_all()


def write_one(principal, writer: int, i: int) -> None:
    record(principal, OPERATION, f"/subscriptions/writer-{writer}", status="Succeeded",
           details={"writer": writer, "i": i})


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain():
    """GIVEN PostgreSQL WHEN four processes append 50 entries each at once THEN the chain is one unbroken line of
    200 entries holding every writer's 50."""
    if not on_postgres():
        pytest.skip("PostgreSQL: SQLite's IMMEDIATE transactions serialize writers.")
    principal = Principal.objects.create(kind=Principal.Kind.USER, display_name="Concurrent Writer")
    connections.close_all()  # the children open connections of their own
    context = multiprocessing.get_context("fork")
    start = context.Event()
    writers = [context.Process(target=_append_from_process, args=(str(principal.pk), n, 50, start)) for n in range(4)]
    for process in writers:
        process.start()
    start.set()
    for process in writers:
        process.join(120)
    assert [p.exitcode for p in writers] == [0, 0, 0, 0]
    walked = chain.walk()
    assert walked.clean, walked.first_break
    assert walked.entries == walked.last_sequence == 200
    per_writer = collections.Counter(ActivityLogEntry.objects.values_list("scope", flat=True))
    assert per_writer == {f"/subscriptions/writer-{n}": 50 for n in range(4)}
    assert ActivityLogHead.objects.get().sequence == 200


# --- the hourly check, the command, the page ---------------------------------------------------------------------


def test_the_hourly_task_stores_the_state_and_raises_one_alert_per_break(actor, mailoutbox, settings,
                                                                        django_capture_on_commit_callbacks):
    """GIVEN a clean chain WHEN the task runs THEN it stores Verified; GIVEN entry #2 edited WHEN it runs twice THEN
    one Sev0 "Activity log tampered" alert (mailed) and one log entry name the break; a second break (another
    entry deleted earlier in the chain) raises its own."""
    from security import tasks

    settings.STRONGROOM_ALERT_EMAILS = ["soc@example.com"]
    write(actor, 4)
    tasks.verify_activity_log()
    check = ActivityLogCheck.objects.get()
    assert (check.state, check.entries_checked, check.verified_sequence) == ("Verified", 4, 4)
    assert not Alert.objects.exists()
    tamper(f"UPDATE {TABLE} SET status = 'Failed' WHERE sequence = 2")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            tasks.verify_activity_log()
    check.refresh_from_db()
    assert (check.state, check.break_kind, check.break_sequence) == ("Broken", chain.EDITED, 2)
    assert check.verified_sequence == 4  # what the last clean check covered stays
    [alert] = Alert.objects.filter(name=chain_check.TAMPERED_ALERT)
    assert alert.severity == Alert.Severity.SEV0 and alert.affected_resource_id == scopes.ROOT
    assert "entry #2: edited" in alert.description and "Keep the database as it is" in alert.description
    assert len(mailoutbox) == 1 and "Activity log tampered" in mailoutbox[0].subject
    logged = ActivityLogEntry.objects.filter(operation=ops.ACTIVITY_LOG_VERIFY, status="Failed")
    assert logged.count() == 1 and logged.get().level == ActivityLogEntry.Level.CRITICAL
    tamper(f"DELETE FROM {TABLE} WHERE sequence = 1")
    tasks.verify_activity_log()
    assert Alert.objects.filter(name=chain_check.TAMPERED_ALERT).count() == 2
    assert ActivityLogCheck.objects.get().break_sequence == 1


def test_the_command_exits_0_on_a_clean_chain_and_1_at_a_break(actor):
    """GIVEN a clean chain WHEN verify_activity_log runs THEN it says so and exits 0 (storing nothing unless
    --record); GIVEN #2 deleted THEN it names the break and what to do on stderr and exits 1."""
    write(actor, 3)
    out = io.StringIO()
    call_command("verify_activity_log", stdout=out)
    assert "Verified: 3 entries (#1–#3)" in out.getvalue() and "unbroken" in out.getvalue()
    assert not ActivityLogCheck.objects.exists()
    call_command("verify_activity_log", "--record", stdout=io.StringIO())
    assert ActivityLogCheck.objects.get().state == "Verified"
    tamper(f"DELETE FROM {TABLE} WHERE sequence = 2")
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_status:
        call_command("verify_activity_log", stdout=io.StringIO(), stderr=err)
    assert exit_status.value.code == 1
    assert "Broken at entry #2: deleted." in err.getvalue() and "Keep the database as it is" in err.getvalue()
    with pytest.raises(CommandError, match="positive number"):
        call_command("verify_activity_log", "--chunk-size", "0")


def test_the_activity_log_page_shows_the_chains_state_and_verifies_on_request(client, lab, trainer):
    """GIVEN the trainer (Owner at the root) WHEN they open the Activity log before any check THEN it says so; WHEN
    they click Verify now THEN the page says Verified with the count, and the check is logged as theirs; GIVEN an
    entry edited THEN Verify now says Broken at its number, with what to do."""
    client.force_login(trainer.user)
    chain.seal_pending()  # the lab's entries, as their commits would have
    page = client.get(reverse("portal:activity_log")).content.decode()
    assert "Chain not checked yet" in page and 'id="verify-chain"' in page
    response = client.post(reverse("portal:activity_log_verify"), follow=True)
    page = response.content.decode()
    count = ActivityLogCheck.objects.get().entries_checked
    assert count > 0 and f"Verified</span>: {count:,} entries" in page
    assert ActivityLogEntry.objects.filter(operation=ops.ACTIVITY_LOG_VERIFY, principal=trainer,
                                           status="Succeeded", details__state="Verified").exists()
    tamper(f"UPDATE {TABLE} SET message = 'edited' WHERE sequence = 1")
    page = client.post(reverse("portal:activity_log_verify"), follow=True).content.decode()
    assert "Broken</span> at entry #1: edited." in page and "Keep the database as it is" in page


def test_verify_now_is_refused_to_read_only_roles(client, lab, trainer):
    """GIVEN a Reader at the root (who sees the whole log) and the lab's reader (on a subscription) WHEN they open the
    page THEN the first sees Verify now disabled, the second no chain size; WHEN they POST it THEN RBAC refuses."""
    from security import services as security_services
    from security.models import RoleDefinition

    reader = lab.personas["reader"].principal
    root_reader = lab.personas["outsider"].principal
    security_services.assign_role(trainer, assignee=root_reader, role=RoleDefinition.objects.get(name="Reader"),
                                  scope=scopes.ROOT)
    chain_check.run_check()
    client.force_login(root_reader.user)
    page = client.get(reverse("portal:activity_log")).content.decode()
    assert 'aria-disabled="true" id="verify-chain"' in page and "entries</strong>" in page
    assert client.post(reverse("portal:activity_log_verify")).status_code == 403
    client.force_login(reader.user)
    page = client.get(reverse("portal:activity_log")).content.decode()
    assert "Verified</span></strong>, last checked" in page and 'id="verify-chain"' not in page
    assert client.post(reverse("portal:activity_log_verify")).status_code == 403
    refused = ActivityLogEntry.objects.filter(operation=ops.ACTIVITY_LOG_VERIFY, status="Failed",
                                              sub_status="Forbidden")
    assert set(refused.values_list("principal_ref", flat=True)) == {str(root_reader.pk), str(reader.pk)}


# --- the migration ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_chains_an_installations_existing_entries():
    """GIVEN today's schema (before the chain) with entries, one of a principal deleted since (its FK emptied) and
    one role-played WHEN migrated THEN every entry is chained in id order, actors kept as text, the head names the
    newest, and the chain verifies clean."""
    from django.db.migrations.executor import MigrationExecutor

    before = [("security", "0003_access_request_role_played_by")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        OldPrincipal, OldEntry = old.get_model("security", "Principal"), old.get_model("security", "ActivityLogEntry")
        kept = OldPrincipal.objects.create(kind="User", display_name="Ada Kept")
        gone = OldPrincipal.objects.create(kind="ManagedIdentity", display_name="bv-gone")

        def old_entry(principal, caller, **details):
            return OldEntry.objects.create(
                timestamp=timezone.now(), principal=principal, caller=caller, operation=OPERATION,
                operation_name="Write things", scope="/subscriptions/old", status="Succeeded",
                level="Informational", correlation_id=uuid.uuid4(), message="from before", details=details)

        made = [old_entry(kept, "Ada Kept", n=1), old_entry(gone, "bv-gone", n=2.5),
                old_entry(kept, "Terry Trainer as Backup admin", playedBy="Terry Trainer", persona="Backup admin"),
                old_entry(None, "Strongroom system", big=1e20)]
        gone.delete()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    entries = list(ActivityLogEntry.objects.order_by("sequence"))
    assert [e.pk for e in entries] == [e.pk for e in made] and [e.sequence for e in entries] == [1, 2, 3, 4]
    assert [(e.principal_ref, e.principal_name) for e in entries] == [
        (str(kept.pk), "Ada Kept"), ("", "bv-gone"), (str(kept.pk), "Ada Kept"), ("", "Strongroom system")]
    assert entries[2].actor_name == "Terry Trainer"
    assert chain.walk().clean
    assert ActivityLogHead.objects.get().sequence == 4
    [after] = write(Principal.objects.get(pk=kept.pk), 1)
    assert after.sequence == 5 and after.previous_hash == entries[-1].entry_hash and chain.walk().clean


# --- sealing after the commit ------------------------------------------------------------------------------------


def test_entries_are_sealed_in_order_once_their_transaction_commits(lab, trainer, django_capture_on_commit_callbacks):
    """GIVEN an outer guarded block running two nested operations WHEN it is under way THEN their entries are in the
    table, signed but without a place yet; WHEN it commits THEN one seal chains them in order, then the outer one."""
    from security.audit import guarded

    as_a_new_transaction()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with guarded(trainer, OPERATION, "/", details={"step": "outer"}):
            with guarded(trainer, OPERATION, "/", details={"step": "first"}):
                pass
            nested = record(trainer, OPERATION, "/", status="Succeeded", details={"step": "second"})
            assert nested.sequence is None and len(nested.content_mac) == 64
            assert ActivityLogEntry.objects.filter(operation=OPERATION, sequence__isnull=True).count() == 2
            assert chain.walk().clean  # waiting for a seal is not a break
    assert len(callbacks) == 1  # one seal per transaction, however many entries
    steps = list(ActivityLogEntry.objects.filter(operation=OPERATION).order_by("sequence")
                 .values_list("details__step", "sequence"))
    assert [s for s, _ in steps] == ["first", "second", "outer"]
    assert [n for _, n in steps] == list(range(steps[0][1], steps[0][1] + 3))
    assert not ActivityLogEntry.objects.filter(sequence__isnull=True).exists() and chain.walk().clean


def test_an_entry_rolled_back_with_its_savepoint_is_not_sealed(lab, trainer, django_capture_on_commit_callbacks):
    """GIVEN an outer block where a nested operation succeeds inside a savepoint that is then rolled back WHEN the
    outer block commits THEN that entry is gone (as its operation) and the chain has no gap."""
    from security.audit import guarded

    as_a_new_transaction()
    with django_capture_on_commit_callbacks(execute=True):
        with guarded(trainer, OPERATION, "/", details={"step": "outer"}):
            with contextlib.suppress(RuntimeError), transaction.atomic():
                with guarded(trainer, OPERATION, "/", details={"step": "undone"}):
                    pass
                raise RuntimeError("rolled back")
    steps = list(ActivityLogEntry.objects.filter(operation=OPERATION).values_list("details__step", flat=True))
    assert steps == ["outer"] and chain.walk().clean


def test_a_failed_outer_block_leaves_only_its_failure(lab, trainer, django_capture_on_commit_callbacks):
    """GIVEN an outer block whose nested operation succeeded WHEN the outer block fails THEN the nested entry is
    rolled back with it, the failure is logged and sealed, and nothing is left unsealed."""
    from security.audit import guarded

    as_a_new_transaction()
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValueError):
        with guarded(trainer, OPERATION, "/", details={"step": "outer"}):
            with guarded(trainer, OPERATION, "/", details={"step": "nested"}):
                pass
            raise ValueError("the outer work failed")
    entries = list(ActivityLogEntry.objects.filter(operation=OPERATION).values_list("details__step", "status"))
    assert entries == [("outer", "Failed")]
    assert not ActivityLogEntry.objects.filter(sequence__isnull=True).exists() and chain.walk().clean


def test_an_entry_whose_writer_died_before_its_seal_is_sealed_by_the_next(actor):
    """GIVEN a committed entry that was never sealed (its process ended between commit and seal) WHEN the chain is
    walked THEN that is no break; WHEN the next writer seals THEN it gets its place before the newer entry."""
    write(actor, 2)
    orphan = record(actor, OPERATION, "/subscriptions/chain-test", status="Succeeded", details={"orphan": True})
    assert first_break() is None
    [newer] = write(actor, 1)
    orphan = ActivityLogEntry.objects.get(pk=orphan.pk)
    assert (orphan.sequence, newer.sequence, newer.previous_hash) == (3, 4, orphan.entry_hash)
    assert chain.walk().clean


def test_an_unsealed_row_not_signed_by_strongroom_is_found_and_never_chained(actor):
    """GIVEN a clean chain WHEN a row is INSERTed without a place in it and with a MAC made without the key THEN the
    walk reports an inserted entry, by its id, and sealing leaves it out of the chain."""
    write(actor, 3)
    insert_raw(**unsealed(forged(4, hash_of(3))))
    found = first_break()
    assert found.kind == chain.INSERTED and found.sequence is None and "no place in the chain" in found.detail
    assert found.key.startswith("inserted#id")
    assert chain.seal_pending() == 0
    assert ActivityLogEntry.objects.filter(sequence__isnull=True).count() == 1
    assert ActivityLogHead.objects.get().sequence == 3


def test_a_copied_row_is_refused(actor):
    """GIVEN an entry WHEN its row is INSERTed again as it is, unsealed (its signed content replayed) THEN the
    database refuses the copy: every entry's uid is unique."""
    [entry] = write(actor, 1)
    copy = unsealed({name: getattr(entry, name) for name in chain.HASHED} | {"content_mac": entry.content_mac})
    with pytest.raises(DatabaseError), transaction.atomic():
        insert_raw(**copy)


def test_the_trigger_lets_an_unsealed_row_get_its_place_and_nothing_else(actor):
    """GIVEN PostgreSQL WHEN an unsealed row's content is changed, or a sealed row renumbered THEN the trigger refuses;
    giving the unsealed row only its place is let through (as sealing does)."""
    if not on_postgres():
        pytest.skip("The trigger is PostgreSQL's.")
    write(actor, 2)
    insert_raw(**unsealed(forged(3, hash_of(2))))
    row_id = ActivityLogEntry.objects.get(sequence__isnull=True).pk
    for sql in (f"UPDATE {TABLE} SET message = 'x', sequence = 3 WHERE id = %s",
                f"UPDATE {TABLE} SET content_mac = 'm', sequence = 3 WHERE id = %s",
                f"UPDATE {TABLE} SET sequence = 9 WHERE sequence = 2 AND %s > 0"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [row_id])
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET sequence = 3, previous_hash = 'p', entry_hash = 'e' WHERE id = %s",
                       [row_id])
    assert ActivityLogEntry.objects.get(pk=row_id).sequence == 3


@pytest.mark.django_db(transaction=True)
def test_a_writer_holding_rows_never_waits_on_the_chain():
    """GIVEN PostgreSQL, a transaction that has logged an operation and then waits for a row another transaction
    holds WHEN that other transaction logs an operation too before it commits THEN neither waits on the other's
    entry (a lock on the chain held across their work was a deadlock: seen between a seed and a worker's
    ConfigureProtection); both end chained."""
    import threading

    if not on_postgres():
        pytest.skip("PostgreSQL: SQLite serializes writers on the whole database.")
    first = Principal.objects.create(kind=Principal.Kind.USER, display_name="First Writer")
    second = Principal.objects.create(kind=Principal.Kind.USER, display_name="Second Writer")
    logged, row_held = threading.Event(), threading.Event()
    failures = []

    def long_transaction():
        try:
            with transaction.atomic():
                record(first, OPERATION, "/", status="Succeeded", details={"step": "first"})
                logged.set()
                if not row_held.wait(30):
                    failures.append("the other transaction never took its row")
                Principal.objects.select_for_update().get(pk=second.pk)  # waits for the other's commit
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))
        finally:
            connections.close_all()

    worker = threading.Thread(target=long_transaction)
    worker.start()
    assert logged.wait(30), failures
    with transaction.atomic():
        Principal.objects.select_for_update().get(pk=second.pk)
        row_held.set()
        record(second, OPERATION, "/", status="Succeeded", details={"step": "second"})
    worker.join(60)
    assert not worker.is_alive() and not failures, failures
    steps = list(ActivityLogEntry.objects.filter(operation=OPERATION).order_by("sequence")
                 .values_list("details__step", flat=True))
    assert sorted(steps) == ["first", "second"] and chain.walk().clean
