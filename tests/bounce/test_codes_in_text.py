"""Status and reply codes in running text, and the delay wording, as extract.py reads them.

The patterns put their look-behind after the first digit and read lower-cased text instead of
using re.IGNORECASE (for speed): the same texts must still be read the same way.
"""

from __future__ import annotations

import pytest

from todoku.bounce.extract import _reply_code_in, _status_in, report_action


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("5.1.1 user unknown", "5.1.1"),  # at the very start: nothing before it
        ("550 5.1.1 <a@example.org>: unknown", "5.1.1"),
        ("(4.4.7)", "4.4.7"),
        ("version 10.5.1.1 of the server", ""),  # inside a longer number
        ("host 192.5.1.1 said", ""),
        ("release 2.4.5.7", ""),
        ("15.1.1 is not a status", ""),
        ("code 5.1.10", "5.1.10"),
    ],
)
def test_enhanced_status_codes(text: str, status: str) -> None:
    assert _status_in(text) == status


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("550 user unknown", 550),
        ("said: 452 too many", 452),
        ("1550 is no reply", None),
        ("port:550 is no reply", None),
        ("#550 is no reply", None),
        ("550.5 MB", None),
        ("limit 552 bytes exceeded", 552),
    ],
)
def test_reply_codes(text: str, code: int | None) -> None:
    assert _reply_code_in(text) == code


@pytest.mark.parametrize(
    ("subject", "report", "action"),
    [
        ("Delivery Status Notification (DELAY)", "", "delayed"),
        ("WARNING: message delayed", "", "delayed"),
        ("Undelivered Mail", "THIS IS A WARNING MESSAGE ONLY.", "delayed"),
        ("Undelivered Mail", "No Action Is Required On Your Part", "delayed"),
        ("Undelivered Mail", "配送が遅延しています", "delayed"),
        ("Undelivered Mail", "The message could not be delivered.", "failed"),
    ],
)
def test_delay_wording_in_any_case(subject: str, report: str, action: str) -> None:
    assert report_action(subject, report) == action
