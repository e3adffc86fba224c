"""PII and PCI redaction of what was said: card numbers, IBANs, national ids, e-mail
addresses, phone numbers and configured patterns (docs/redaction.md).

``redact`` is pure; ``rules_from_settings`` builds the rules in force from the settings.
"""

from streaming.redaction.core import Redaction, TimeSpan, label, redact
from streaming.redaction.finders import DEFAULT_NATIONAL_IDS, KINDS, Rules

__all__ = ["DEFAULT_NATIONAL_IDS", "KINDS", "Redaction", "Rules", "TimeSpan", "label", "redact"]
