"""Package dsn composes delivery status notifications: RFC 3464 ``message/delivery-status``
inside an RFC 6522 ``multipart/report``, with a human-readable part in the server's language.

Invariants: reports go from ``MAILER-DAEMON@<hostname>`` with the null reverse-path, so a report
can never cause another report (RFC 3461 §6.2, RFC 5321 §4.5.5); the Diagnostic-Code carries the
remote server's reply unchanged.
"""
