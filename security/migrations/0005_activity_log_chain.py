"""The activity log becomes a hash chain (security.chain): actors kept as text, existing entries chained.

Existing entries get a uid and a content MAC and are chained in id order (the order they were written):
entry #1 is the oldest. The
principal's foreign key gives way to its id and display name as text, so deleting a principal (a vault's
identity, when the vault goes) no longer empties the "who" of its entries. On PostgreSQL a trigger then
refuses UPDATE, DELETE and TRUNCATE of the table.
"""

import uuid

import django.utils.timezone
from django.db import migrations, models

import security.models

TABLE = "security_activitylogentry"
FUNCTION = "security_activity_log_append_only"
# What an entry says: the trigger lets none of it change when an unsealed entry is sealed.
CONTENT_COLUMNS = ("id", "uid", "content_mac", "timestamp", "recorded_at", "principal_ref", "principal_name", "actor_ref", "actor_name",
                   "caller", "operation", "operation_name", "scope", "status", "sub_status", "level", "correlation_id",
                   "message", "details")
TRIGGERS = (
    ("security_activitylogentry_append_only", "BEFORE UPDATE OR DELETE", "FOR EACH ROW"),
    ("security_activitylogentry_no_truncate", "BEFORE TRUNCATE", "FOR EACH STATEMENT"),
)


def chain_existing(apps, schema_editor):
    from security import chain

    Entry = apps.get_model("security", "ActivityLogEntry")
    Head = apps.get_model("security", "ActivityLogHead")
    db = schema_editor.connection.alias
    if schema_editor.connection.vendor == "postgresql":  # no deferred trigger event left before ALTER TABLE
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    key = chain._key()
    sequence, previous = 0, chain.GENESIS
    batch = []
    rows = Entry.objects.using(db).select_related("principal").order_by("id")
    for entry in rows.iterator(chunk_size=2000):
        sequence += 1
        details = entry.details or {}
        principal = entry.principal
        entry.principal_ref = str(principal.pk) if principal is not None else ""
        if principal is not None:
            entry.principal_name = principal.display_name
        else:  # deleted already: the caller is the name it had, unless someone played it
            entry.principal_name = "" if "playedBy" in details else entry.caller
        entry.actor_ref, entry.actor_name = "", str(details.get("playedBy", ""))
        entry.uid = uuid.uuid4()
        entry.content_mac = chain.content_mac({name: getattr(entry, name) for name in chain.HASHED}, key)
        entry.sequence, entry.previous_hash = sequence, previous
        entry.entry_hash = previous = chain.link_hash(sequence, previous, entry.content_mac, key)
        batch.append(entry)
        if len(batch) >= 1000:
            _save(Entry, db, batch)
    _save(Entry, db, batch)
    Head.objects.using(db).update_or_create(pk=1, defaults={"sequence": sequence, "entry_hash": previous})


def _save(Entry, db, batch):
    fields = ["uid", "content_mac", "sequence", "previous_hash", "entry_hash", "principal_ref", "principal_name", "actor_ref",
              "actor_name"]
    Entry.objects.using(db).bulk_update(batch, fields)
    batch.clear()


def restore_principals(apps, schema_editor):
    """Backwards: the foreign key again, for the principals that still exist."""
    Entry = apps.get_model("security", "ActivityLogEntry")
    Principal = apps.get_model("security", "Principal")
    db = schema_editor.connection.alias
    refs = set(Entry.objects.using(db).exclude(principal_ref="").values_list("principal_ref", flat=True))
    for pk in Principal.objects.using(db).filter(pk__in=refs).values_list("pk", flat=True):
        Entry.objects.using(db).filter(principal_ref=str(pk)).update(principal_id=pk)


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite: the model refuses changes; the chain detects the rest
    schema_editor.execute(f"""
        CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- An entry gets its place in the chain once, just after its writer commits
            -- (security.chain.seal_pending): only its sequence and hashes change.
            IF TG_OP = 'UPDATE' AND OLD.sequence IS NULL AND NEW.sequence IS NOT NULL
               AND {" AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in CONTENT_COLUMNS)} THEN
                RETURN NEW;
            END IF;
            IF TG_OP = 'TRUNCATE' AND current_setting('strongroom.allow_activity_log_truncate', true) = 'on' THEN
                RETURN NULL;  -- the test suite empties its database between tests
            END IF;
            RAISE EXCEPTION 'The activity log is append-only: % on % is refused.', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Strongroom only appends to its activity log; manage.py verify_activity_log checks it.';
        END $$""", params=None)  # no parameters: the '%' are the function's own
    for name, when, each in TRIGGERS:
        schema_editor.execute(f"CREATE TRIGGER {name} {when} ON {TABLE} {each} EXECUTE FUNCTION {FUNCTION}()")


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _when, _each in TRIGGERS:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {TABLE}")
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):

    dependencies = [
        ("security", "0004_roleassignment_condition"),
    ]

    operations = [
        migrations.AddField(
            model_name="activitylogentry",
            name="sequence",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="activitylogentry",
            name="principal_ref",
            field=security.models.PrincipalRefField(blank=True, db_index=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="activitylogentry",
            name="principal_name",
            field=models.CharField(blank=True, default="", max_length=200),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="activitylogentry",
            name="actor_ref",
            field=security.models.PrincipalRefField(blank=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="activitylogentry",
            name="actor_name",
            field=models.CharField(blank=True, default="", max_length=200),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="activitylogentry",
            name="uid",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name="activitylogentry",
            name="content_mac",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="activitylogentry",
            name="previous_hash",
            field=models.CharField(blank=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="activitylogentry",
            name="entry_hash",
            field=models.CharField(blank=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="activitylogentry",
            name="recorded_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.CreateModel(
            name="ActivityLogHead",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ("sequence", models.BigIntegerField(default=0)),
                ("entry_hash", models.CharField(max_length=64)),
            ],
        ),
        migrations.CreateModel(
            name="ActivityLogCheck",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ("state", models.CharField(choices=[("Verified", "Verified"), ("Broken", "Broken")], max_length=20)),
                ("checked_at", models.DateTimeField()),
                ("entries_checked", models.BigIntegerField(default=0)),
                ("seconds", models.FloatField(default=0)),
                ("break_kind", models.CharField(blank=True, max_length=20)),
                ("break_sequence", models.BigIntegerField(blank=True, null=True)),
                ("break_detail", models.TextField(blank=True)),
                ("verified_sequence", models.BigIntegerField(default=0)),
                ("verified_hash", models.CharField(blank=True, max_length=64)),
                ("verified_at", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.RunPython(chain_existing, restore_principals),
        migrations.RemoveField(
            model_name="activitylogentry",
            name="principal",
        ),
        migrations.AlterField(
            model_name="activitylogentry",
            name="sequence",
            field=models.BigIntegerField(null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="activitylogentry",
            name="uid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddIndex(
            model_name="activitylogentry",
            index=models.Index(condition=models.Q(("sequence__isnull", True)), fields=["id"],
                               name="activitylog_unsealed"),
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
