from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("protection", "0004_lab_clock_records")]

    operations = [
        migrations.AddField(
            model_name="recoverypoint",
            name="soft_deleted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
