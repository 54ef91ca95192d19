"""Package diag answers "why can't my mail be sent?" live, step by step.

``diagnose_address`` follows the path outbound delivery takes to one address (syntax, DNS,
MX routing, TCP, greeting, EHLO, STARTTLS, MAIL FROM, RCPT TO) and stops at the first step
that fails. ``diagnose_submission`` checks a mail program's sending settings against a
submission server (connect, TLS and certificate, AUTH, login, From accepted).

Invariants: no message is ever sent (no DATA; each session ends with RSET and QUIT); every
network wait is bounded by the caller's timeout; the password never appears in a step or log.
Remote replies are explained by the bounce analyzer, so a user reads the same words as in
their bounces. The DNS resolver, MX routing and SMTP client are the outbound queue's own.
"""

from todoku.diag.report import Report, Step

__all__ = ["Report", "Step"]
