"""Package dsn composes delivery status notifications: RFC 3464 ``message/delivery-status``
inside an RFC 6522 ``multipart/report``, with a human-readable part in the server's language.

Invariants: reports go from ``MAILER-DAEMON@<hostname>`` with the null reverse-path, so a report
can never cause another report (RFC 3461 §6.2, RFC 5321 §4.5.5); the Diagnostic-Code carries the
remote server's reply unchanged but for control characters (made spaces) and its length (the first
4,000 characters). Composing costs time and memory linear in the size of the original, whatever
it or the remote say (issue 12): the original is copied as bytes, its Subject is read by
``dsn.subject`` without the standard library's header parser, and a report that still cannot be
composed is sent plain, without anything copied (``compose.compose_safely``).
"""
