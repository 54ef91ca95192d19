"""What the listeners count for monitoring, as the sessions see it.

``web.metrics.Metrics`` implements it (Prometheus counters for /metrics); app.py hands it to the
SMTP and POP3 contexts. The sessions know only this protocol, so ``net`` does not depend on the
web side (which depends on ``net`` for its connection limits).
"""

from __future__ import annotations

from typing import Protocol

from todoku.proto.smtp.codes import Reply


class SessionCounters(Protocol):
    def message(self, listener: str, reply: Reply) -> None:
        """The end of DATA: accepted (2xx) or not."""
        ...

    def refused(self, listener: str, stage: str, reply: Reply) -> None:
        """A refused MAIL or RCPT (``stage``)."""
        ...

    def auth_failed(self, listener: str) -> None: ...
