"""Issue 22, the portal under load: the vault's Backup instances blade walks (vault, name) for its page."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("protection", "0008_archive_tier")]

    operations = [
        migrations.AddIndex(
            model_name="backupinstance",
            index=models.Index(fields=["vault", "name"], name="instance_vault_name_idx"),
        ),
    ]
