"""The password-guessing throttle counts an IPv6 client per /64 (issue 12, item 11): rotating
through the addresses of one /64 gets no fresh budget."""

from __future__ import annotations

from todoku.policy.auth import AuthThrottle


def throttle() -> AuthThrottle:
    return AuthThrottle(delay_after=2, lockout_after=4, lockout_seconds=60, clock=lambda: 1000.0)


def test_addresses_of_one_ipv6_64_share_a_budget() -> None:
    t = throttle()
    for host in range(1, 5):  # a new address for every guess, all in 2001:db8:1:2::/64
        t.failure(f"2001:db8:1:2::{host:x}")
    assert t.locked("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert t.locked("2001:DB8:1:2:0:0:0:1")  # however the address is written
    assert not t.locked("2001:db8:1:3::1")  # the next /64 is someone else


def test_success_clears_the_64_and_ipv4_stays_per_address() -> None:
    t = throttle()
    assert t.failure("2001:db8::1") == 0
    assert t.failure("2001:db8::2") == 1.0  # the second failure of the /64: the delay starts
    t.success("2001:db8::3")
    assert t.failure("2001:db8::4") == 0
    for _ in range(4):
        t.failure("192.0.2.1")
    assert t.locked("192.0.2.1") and not t.locked("192.0.2.2")
