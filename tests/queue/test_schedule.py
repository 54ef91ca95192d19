"""The retry schedule as pure functions of settings and time."""

from __future__ import annotations

from todoku.dsn.durations import describe_duration
from todoku.queue.schedule import FakeClock, Schedule

DEFAULT = Schedule((300.0, 600.0, 1200.0, 2400.0, 3600.0, 7200.0), 4 * 3600.0, 5 * 86400.0)


def test_retry_intervals_follow_the_list_then_repeat_the_last() -> None:
    waits = [DEFAULT.retry_interval(n) for n in range(1, 10)]
    assert waits == [300, 600, 1200, 2400, 3600, 7200, 7200, 7200, 7200]


def test_next_attempt_counts_from_now_and_never_passes_expiry() -> None:
    clock = FakeClock()
    arrived = clock.now()
    clock.advance(100)
    assert DEFAULT.next_attempt(arrived, 1, clock.now()) == clock.now() + 300
    near_end = arrived + 5 * 86400 - 60
    assert DEFAULT.next_attempt(arrived, 7, near_end) == arrived + 5 * 86400


def test_minimum_wait_stretches_the_next_attempt() -> None:
    assert DEFAULT.next_attempt(0.0, 1, 10.0, minimum_wait=900.0) == 910.0


def test_delay_warning_due_once_after_the_configured_time() -> None:
    assert not DEFAULT.delay_warning_due(0.0, 4 * 3600 - 1, already_warned=False)
    assert DEFAULT.delay_warning_due(0.0, 4 * 3600, already_warned=False)
    assert not DEFAULT.delay_warning_due(0.0, 5 * 3600, already_warned=True)
    disabled = Schedule((60.0,), 0.0, 3600.0)
    assert not disabled.delay_warning_due(0.0, 10_000.0, already_warned=False)


def test_expiry() -> None:
    assert not DEFAULT.expired(0.0, 5 * 86400 - 1)
    assert DEFAULT.expired(0.0, 5 * 86400)


def test_next_wakeup_is_the_earliest_of_retry_warning_and_expiry() -> None:
    short = Schedule((10.0,), 2.0, 6.0)
    assert short.next_wakeup(0.0, 10.0, already_warned=False) == 2.0
    assert short.next_wakeup(0.0, 10.0, already_warned=True) == 6.0
    assert short.next_wakeup(0.0, 1.0, already_warned=False) == 1.0


def test_durations_in_words() -> None:
    assert describe_duration(4 * 3600) == "4 hours"
    assert describe_duration(5 * 86400) == "5 days"
    assert describe_duration(1) == "1 second"
    assert describe_duration(6) == "6 seconds"
    assert describe_duration(90 * 60) == "1.5 hours"
    assert describe_duration(4 * 3600, "ja") == "4時間"


def test_greylisting_is_recognised_by_the_remote_words() -> None:
    from todoku.bounce import classify_reply
    from todoku.outcome import Outcome, Verdict
    from todoku.queue.steering import is_greylisting

    def attempt(code: int, enhanced: str, text: str) -> Outcome:
        return Outcome(
            "bob@remote.test",
            Verdict.TEMPORARY,
            "rcpt",
            code,
            enhanced,
            text,
            reason=classify_reply(code, enhanced, text),
        )

    assert is_greylisting(
        attempt(
            450, "4.7.1", "Recipient address rejected: Greylisted, please try again in 300 seconds"
        )
    )
    assert is_greylisting(attempt(451, "4.7.1", "Please try again later (graylisting in action)"))
    assert not is_greylisting(attempt(421, "4.7.0", "Too many connections from your IP, slow down"))
    assert not is_greylisting(attempt(451, "4.3.0", "Temporary local problem"))
