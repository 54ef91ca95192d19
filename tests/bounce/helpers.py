"""Small hand-made bounces in the shapes real MTAs write, for the unit tests."""

from __future__ import annotations


def postfix_dsn(
    recipient: str,
    status: str,
    diagnostic: str,
    *,
    action: str = "failed",
    command: str = "RCPT TO",
) -> bytes:
    """A Postfix-style multipart/report (RFC 3464) for one recipient."""
    return f"""From: MAILER-DAEMON@mail.example.net (Mail Delivery System)
To: sender@example.net
Subject: Undelivered Mail Returned to Sender
Date: Sat, 28 Nov 2026 03:00:00 +0000
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"

--B0UND
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.net.

<{recipient}>: host mx.example.org[192.0.2.25] said: {diagnostic} (in reply to
    {command} command)

--B0UND
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.net
Arrival-Date: Sat, 28 Nov 2026 02:59:59 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; {diagnostic}

--B0UND
Content-Type: message/rfc822

From: sender@example.net
To: {recipient}
Subject: hello

hi
--B0UND--
""".replace("\n", "\r\n").encode()


def exim_text(recipient: str, diagnostic: str, *, after: str = "RCPT TO:<x@example.org>") -> bytes:
    """An Exim-style single-part report with X-Failed-Recipients."""
    return f"""From: Mail Delivery System <Mailer-Daemon@mail.example.net>
To: sender@example.net
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    SMTP error from remote mail server after {after}:
    host mx.example.org [192.0.2.25]: {diagnostic}

------ This is a copy of the message, including all the headers. ------

From: sender@example.net
To: {recipient}
Subject: hello

hi
""".encode()


def qmail_text(recipient: str, text: str) -> bytes:
    return f"""From: MAILER-DAEMON@mail.example.net
To: sender@example.net
Subject: failure notice

Hi. This is the qmail-send program at mail.example.net.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{recipient}>:
{text}

--- Below this line is a copy of the message.

From: sender@example.net
To: {recipient}
Subject: hello

hi
""".encode()


def japanese_carrier(recipient: str, sentence_iso2022jp: str) -> bytes:
    """A carrier-style notice in ISO-2022-JP (as Japanese mobile carriers send)."""
    body = f"""{sentence_iso2022jp}

<{recipient}>
""".encode("iso2022_jp")
    head = b"""From: MAILER-DAEMON@mail.example.ne.jp
To: sender@example.net
Subject: Mail Delivery Failure
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

"""
    return head + body
