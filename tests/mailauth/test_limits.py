"""Rate limits and greylisting in virtual time (an injected clock, no sleeping)."""

from __future__ import annotations

from todoku.mailauth.limits import GREYLIST_FORGET, Greylist, RateLimiter, client_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_window_slides() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.allow("192.0.2.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("192.0.2.2")  # another client has its own budget
    clock.now += 59
    assert not limiter.allow("192.0.2.1")
    clock.now += 1.5
    assert limiter.allow("192.0.2.1")


def test_ipv6_clients_counted_per_64() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.allow("2001:db8:1:2::1")
    assert not limiter.allow("2001:db8:1:2::ffff")
    assert limiter.allow("2001:db8:1:3::1")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"


def test_zero_means_no_limit() -> None:
    limiter = RateLimiter(0, clock=FakeClock())
    assert all(limiter.allow("192.0.2.1") for _ in range(1000))


def test_greylist_lifecycle() -> None:
    clock = FakeClock()
    greylist = Greylist(300, clock=clock)
    first = greylist.check("192.0.2.1", "a@x.test", "b@y.test")
    assert first is not None and (first.code, first.enhanced) == (450, "4.7.1")
    clock.now += 100
    early = greylist.check("192.0.2.1", "a@x.test", "b@y.test")
    assert early is not None and "200 seconds" in early.text
    clock.now += 201
    assert greylist.check("192.0.2.1", "a@x.test", "b@y.test") is None
    clock.now += 86400
    assert greylist.check("192.0.2.1", "A@X.test", "b@y.test") is None  # remembered, case-blind
    assert greylist.check("192.0.2.1", "other@x.test", "b@y.test") is not None  # a new triplet


def test_greylist_forgets_clients_that_never_came_back() -> None:
    clock = FakeClock()
    greylist = Greylist(300, clock=clock)
    greylist.check("192.0.2.1", "a@x.test", "b@y.test")
    clock.now += GREYLIST_FORGET + 1
    assert greylist.check("192.0.2.1", "a@x.test", "b@y.test") is not None  # starts over
