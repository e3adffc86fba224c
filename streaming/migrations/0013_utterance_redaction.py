from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("streaming", "0012_mute_periods"),
    ]

    operations = [
        migrations.AddField(
            model_name="utterance",
            name="redacted",
            field=models.BooleanField(blank=True, editable=False, help_text="PII/PCI masked before storage (None: redaction was off)", null=True),
        ),
        migrations.AddField(
            model_name="utterance",
            name="redaction",
            field=models.JSONField(blank=True, default=dict, editable=False, help_text="Who redacted (callsite or acs), the kinds masked and their time spans"),
        ),
    ]
