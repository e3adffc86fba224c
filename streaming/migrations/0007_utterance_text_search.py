"""A GIN index for full-text search over utterance text, on PostgreSQL only.

It matches the expression ``streaming.history.search`` queries with (``to_tsvector('simple', text)``),
so PostgreSQL can use it. SQLite searches by substring and needs nothing.
"""

from django.db import migrations

INDEX = "utterance_text_search"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON streaming_utterance "
            "USING gin (to_tsvector('simple'::regconfig, COALESCE(text, '')))"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("streaming", "0006_alter_call_options")]

    operations = [migrations.RunPython(create, drop)]
