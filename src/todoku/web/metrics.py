"""What the server counts for ``/metrics`` (Prometheus text format, prometheus-client).

One ``Metrics`` object per server, made in app.py and handed to the places that count (the
SMTP and POP3 sessions, the queue runner); its registry is its own, never prometheus-client's
global one, so two servers in one process (tests) count apart. Counting is a dictionary update
on the event loop: nothing here waits or does I/O.

Labels take values from fixed sets only (listener names, SMTP stages, reason words of the bounce
analyzer, enhanced status codes of our own replies), never from what a client sent, so the
number of series stays bounded whatever the traffic.

Gauges that describe state rather than events (queue size, oldest message, sessions) are not
kept up to date here: ``/metrics`` reads them on each scrape (web/routes.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

if TYPE_CHECKING:
    from todoku.outcome import Outcome
    from todoku.proto.smtp.codes import Reply
    from todoku.web.outcomes import DailyOutcomes

# The words the queue runner logs for a verdict (queue/runner.py, "=> delivered").
RESULTS = {"delivered": "delivered", "permanent": "bounced", "temporary": "deferred"}


def _status(reply: Reply) -> str:
    return reply.enhanced or str(reply.code)


class Metrics:
    def __init__(self, daily: DailyOutcomes | None = None) -> None:
        # Each delivery result is also counted per day for the admin pages' chart (web/outcomes.py).
        self.daily = daily
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.messages = Counter(
            "todoku_smtp_messages",
            "Messages at the end of DATA, by listener and result (accepted or rejected)",
            ["listener", "result"],
            registry=registry,
        )
        self.refusals = Counter(
            "todoku_smtp_refusals",
            "Refused SMTP commands and messages, by listener, stage and enhanced status code",
            ["listener", "stage", "status"],
            registry=registry,
        )
        self.deliveries = Counter(
            "todoku_deliveries",
            "Outbound delivery attempts per recipient, by result and reason word",
            ["result", "reason"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "todoku_auth_failures",
            "Failed logins (SMTP AUTH, POP3 USER/PASS and AUTH), by listener",
            ["listener"],
            registry=registry,
        )
        self.sessions = Gauge(
            "todoku_sessions",
            "Sessions open now, by listener (read on scrape)",
            ["listener"],
            registry=registry,
        )
        self.queue_messages = Gauge(
            "todoku_queue_messages",
            "Messages in the outbound queue that are not held (read on scrape)",
            registry=registry,
        )
        self.queue_oldest = Gauge(
            "todoku_queue_oldest_age_seconds",
            "Age of the oldest message in the outbound queue that is not held (read on scrape)",
            registry=registry,
        )
        self.scrape_errors = Counter(
            "todoku_metrics_scrape_errors",
            "Scrapes that could not read the queue from storage",
            registry=registry,
        )

    # ------------------------------------------------------------ hooks (event loop only)

    def message(self, listener: str, reply: Reply) -> None:
        """The end of DATA: accepted (2xx) or not."""
        if 200 <= reply.code < 300:
            self.messages.labels(listener, "accepted").inc()
        else:
            self.messages.labels(listener, "rejected").inc()
            self.refusals.labels(listener, "DATA", _status(reply)).inc()

    def refused(self, listener: str, stage: str, reply: Reply) -> None:
        """A refused MAIL or RCPT (``stage``), as the server's NOQUEUE log line says it."""
        self.refusals.labels(listener, stage, _status(reply)).inc()

    def auth_failed(self, listener: str) -> None:
        self.auth_failures.labels(listener).inc()

    def delivered(self, attempt: Outcome) -> None:
        """One recipient's attempt: delivered, bounced or deferred, and the analyzer's reason word."""
        result = RESULTS.get(attempt.verdict.value, attempt.verdict.value)
        self.deliveries.labels(result, attempt.reason or "-").inc()
        if self.daily is not None:
            self.daily.add(result, attempt.reason or "-")
