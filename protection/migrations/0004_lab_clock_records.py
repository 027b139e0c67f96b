from django.db import migrations, models
from django.db.models import F


def backfill_real_start_time(apps, schema_editor):
    # Jobs before this migration: their start time is the best real time known.
    apps.get_model("protection", "Job").objects.filter(real_start_time__isnull=True).update(real_start_time=F("start_time"))


class Migration(migrations.Migration):

    dependencies = [
        ("protection", "0003_job_liveness"),
    ]

    operations = [
        migrations.AddField(
            model_name="backupinstance",
            name="purge_started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="recoverypoint",
            name="expired_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="job",
            name="real_start_time",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(backfill_real_start_time, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="job",
            name="real_start_time",
            field=models.DateTimeField(),
        ),
        migrations.AlterModelOptions(
            name="job",
            options={"ordering": ["-real_start_time", "-id"]},
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["vault", "-real_start_time"], name="job_vault_real_time_idx"),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["-real_start_time"], name="job_real_time_idx"),
        ),
    ]
