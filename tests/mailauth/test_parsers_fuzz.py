"""Hostile DNS text and headers never break the checks: hypothesis over the record parsers and
the SPF evaluator (DNS as a table, no sockets)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from todoku.mailauth import dmarc, spf
from todoku.mailauth.dkim import header_values, signature_keys
from todoku.mailauth.inbound import strip_forged_fields
from todoku.mailauth.lookup import TableLookups

RESULTS = {spf.PASS, spf.FAIL, spf.SOFTFAIL, spf.NEUTRAL, spf.NONE, spf.TEMPERROR, spf.PERMERROR}
TERMS = st.sampled_from(
    [
        "all",
        "-all",
        "~all",
        "?all",
        "+a",
        "a/24",
        "a:x.test//64",
        "mx",
        "mx:x.test/0",
        "ip4:192.0.2.0/24",
        "ip4:300.1.1.1",
        "ip6:2001:db8::/32",
        "include:x.test",
        "include:",
        "exists:%{i}.x.test",
        "exists:%{z}",
        "redirect=x.test",
        "redirect=x.test",
        "exp=e.x.test",
        "ptr",
        "%{",
        "a:%{d2r}",
        "unknown=1",
        "bogus",
        "",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TERMS, max_size=8), st.lists(TERMS, max_size=4), st.text(max_size=40))
def test_spf_evaluation_always_gives_a_result_word(
    own: list[str], other: list[str], noise: str
) -> None:
    lookups = TableLookups(
        records={
            ("d.test", "TXT"): ["v=spf1 " + " ".join(own)],
            ("x.test", "TXT"): ["v=spf1 " + " ".join(other) + " " + noise],
            ("x.test", "A"): ["192.0.2.1"],
            ("x.test", "MX"): ["10 x.test"],
        }
    )
    result = asyncio.run(spf.check_host(lookups, "192.0.2.1", "d.test", "u@d.test", "h.test"))
    assert result in RESULTS
    assert len(lookups.asked) <= 1 + 10 * 11 + 10  # bounded DNS work whatever the records say


@given(st.text(max_size=200))
def test_dmarc_parser_never_raises(text: str) -> None:
    record = dmarc.parse_record(text)
    assert record is None or record.policy in ("none", "quarantine", "reject")


@given(st.binary(max_size=400))
def test_header_helpers_never_raise(data: bytes) -> None:
    header_values(data, "from")
    signature_keys(data)
    cleaned = strip_forged_fields(data, "mx.example.test")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        assert cleaned.endswith(data[end + 2 :])  # the body is never touched
