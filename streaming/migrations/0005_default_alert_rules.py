"""Default alert rules, so a fresh install flags dead air, long monologues and overtalk.

They are ordinary rows: edit or disable them in the admin.
"""

from django.db import migrations

DEFAULT_RULES = [
    {"name": "Dead air over 5 s", "kind": "dead_air", "seconds": 5},
    {"name": "Monologue over 60 s", "kind": "monologue", "seconds": 60},
    {"name": "Overtalk over 25 % in 30 s", "kind": "overtalk", "seconds": 30, "percent": 25},
    {"name": "Customer wants to cancel", "kind": "keyword", "phrase": "cancel my account"},
]


def add_rules(apps, schema_editor):
    AlertRule = apps.get_model("streaming", "AlertRule")
    for rule in DEFAULT_RULES:
        AlertRule.objects.get_or_create(name=rule["name"], defaults=rule)


def remove_rules(apps, schema_editor):
    AlertRule = apps.get_model("streaming", "AlertRule")
    AlertRule.objects.filter(name__in=[r["name"] for r in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("streaming", "0004_analytics_alerts")]

    operations = [migrations.RunPython(add_rules, remove_rules)]
