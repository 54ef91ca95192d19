"""Fuzz the whole bounce pipeline (bounce/analyze.py ``analyze_bytes``): read, extract, classify,
explain, on arbitrary bytes and on structured mutations of real bounces.

``todoku explain`` reads files anyone can mail us. Whatever the file, the pipeline returns at
least one ``Diagnosis`` and never raises (issue 12, finding 9: one bad file aborted the run);
every diagnosis uses the taxonomy's words, an RFC 3463 status or none, an SMTP reply code or
none, and explains itself in both languages. Inputs are bounded (MAX_MESSAGE); no timing.
"""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.support import fuzz_settings, mutated_message
from todoku.bounce.analyze import Diagnosis, analyze_bytes
from todoku.bounce.explain import REASONS
from todoku.bounce.render import as_json

_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")


def check(diagnoses: list[Diagnosis], explained: bool) -> None:
    assert diagnoses, "no diagnosis at all"
    for d in diagnoses:
        assert d.reason in REASONS, d.reason
        assert d.status == "" or _STATUS.fullmatch(d.status), d.status
        assert d.reply_code is None or 200 <= d.reply_code <= 599, d.reply_code
        assert isinstance(d.permanent, bool)
        # permanent means "nothing retries it" (issue 13): the report's action, not the status
        # class (todoku's own give-up after max_lifetime is failed with 4.4.7).
        assert d.permanent == (d.action == "failed"), (d.permanent, d.action)
        if d.status[:1] == "2":
            assert not d.permanent, "a 2.x.x status never describes a returned message"
        if explained:
            assert d.cause and d.remedy
        for text in (d.recipient, d.remote_mta, d.diagnostic, d.date, d.cause, d.remedy):
            assert isinstance(text, str)
        json.loads(as_json("fuzz.eml", d))


@fuzz_settings(0.5)
@given(data=mutated_message(), lang=st.sampled_from(["en", "ja"]), explain=st.booleans())
def test_mutated_bounces_always_get_a_diagnosis(data: bytes, lang: str, explain: bool) -> None:
    check(analyze_bytes(data, lang, explain), explain)


@fuzz_settings()
@given(data=st.binary(max_size=3000))
def test_arbitrary_bytes_always_get_a_diagnosis(data: bytes) -> None:
    check(analyze_bytes(data, "en", True), True)
