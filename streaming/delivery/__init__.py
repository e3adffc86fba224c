"""Alerts delivered beyond the browser: signed webhooks, chat webhooks and e-mail.

``formats`` builds what is sent (pure), ``sending`` sends one delivery (blocking, in a
thread), ``worker`` is the loop that takes due deliveries from the outbox
(``streaming.models.AlertDelivery``) and records each try.
"""
