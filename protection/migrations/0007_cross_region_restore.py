import datetime as dt

from django.db import migrations, models


def backfill(apps, schema_editor):
    """Points replicated before the field existed: their secondary copy's ``replicatedAt``."""
    RecoveryPoint = apps.get_model("protection", "RecoveryPoint")
    for point in RecoveryPoint.objects.exclude(copies=[]).only("pk", "copies").iterator():
        for copy in point.copies or []:
            if copy.get("role") == "secondary" and copy.get("replicatedAt"):
                RecoveryPoint.objects.filter(pk=point.pk).update(
                    secondary_copied_at=dt.datetime.fromisoformat(copy["replicatedAt"]))


class Migration(migrations.Migration):

    dependencies = [("protection", "0006_azure_disk_policies")]

    operations = [
        migrations.AddField(
            model_name="recoverypoint",
            name="secondary_copied_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
