"""Named patterns the analyzer uses besides the phrase tables of knowledge.py: how to recognise
a filtering gateway, a relay quoting its next hop, a sendmail transcript, and a few report
sentences that change what a reply means. Data only."""

from __future__ import annotations

import re

# Bounces written by content-filtering gateways and anti-spam appliances, recognised by the
# headers their products stamp on the bounce itself (X-Mailer, a vendor header, the daemon's
# domain). Such a gateway accepts the recipient first and relays the message inward; when the
# inner server then refuses the mailbox, the refusal reaches us after the content was taken, so a
# "user unknown" in their report is the gateway's filtering of that recipient, not a reply to
# RCPT TO. The patterns are matched against "Header-Name: value" lines, lower-cased.
FILTER_GATEWAY = re.compile(
    r"^x-nai-header: .*mcafee"  # McAfee Email and Web Security appliances
    r"|^x-mailer: .*surfcontrol"  # SurfControl E-mail Filter
    r"|^from: .*@[\w.-]*mxlogic\.net"  # MXLogic (McAfee SaaS) filtering service
    r"|^x-ahmailid: ",  # Activehunter anti-spam gateway
    re.MULTILINE,
)
# Headers worth reading for FILTER_GATEWAY (the rest of the header is never joined).
FILTER_GATEWAY_HEADERS = ("X-NAI-Header", "X-Mailer", "From", "X-AHMAILID")

# "550 : User unknown": the refusal names no address because it answered the message content
# (after DATA, when a server no longer speaks of one recipient); a reply to RCPT TO quotes the
# address it refuses ("550 <user@example.jp>: User unknown").
USER_UNKNOWN_WITHOUT_ADDRESS = re.compile(r"\b5\d\d:? +: +user unknown")

# Yahoo refuses an address that has no account only after the message was sent (at the end of
# DATA: "554 delivery error: dd This user doesn't have a yahoo.com account"): a verdict on the
# mailbox itself, so the after-DATA rule that turns "user unknown" into "filtered" must not apply.
MAILBOX_VERDICT_AFTER_DATA = re.compile(r"doesn't have an? \S+ account")

# Not an auto-reply but a recipient's request to leave a list: mail programs that act on
# List-Unsubscribe (RFC 2369 §3.2, mailto:) send it for the user, with Auto-Submitted set. It is
# the recipient's feedback on the mail, like a complaint report.
UNSUBSCRIBE_REQUEST = re.compile(r"sent this (e-?mail|message) to unsubscribe")

# Amazon SES (and WorkMail) DSNs write "<status> - <its summary> <code>-'<the remote reply>'":
# the summary is SES's name for the status class, the quoted text the remote server's words.
QUOTED_NEXT_HOP_REPLY = re.compile(r"^\d\.\d{1,3}\.\d{1,3} - [^']*?\b\d{3}[ -]'(.+?)'")

# A refusal in place of the greeting: the greeting names the server first ("220 mx.example.org
# ESMTP ...", RFC 5321 §4.2 and §4.3.1), and a server that will not talk to the client answers
# the connection with 554 (or 421) in the same shape ("554 mx.example.org ESMTP not accepting
# connections", RFC 5321 §3.1). Matched against a lower-cased reply.
GREETING_REFUSAL = re.compile(r"^(?:421|554)[ -](?:[a-z0-9-]+\.)+[a-z0-9-]+ e?smtp\b")

# sendmail session transcripts: ">>> COMMAND" sent, "<<< NNN text" the remote's reply.
SENDMAIL_TRANSCRIPT_COMMAND = re.compile(r"^>>> [^\n]*", re.MULTILINE)
SENDMAIL_TRANSCRIPT_REPLY = re.compile(r"^<<< ([245]\d\d[ -][^\n]*)", re.MULTILINE)

# A reporting MTA's own sentence that the recipient's account exists but is switched off (EZweb:
# "The user(s) account is disabled."), which outranks the remote's bare "550 user unknown".
ACCOUNT_DISABLED_NOTICE = re.compile(
    r"^the user\(s\) account is (disabled|suspended)|"
    r"^this account has been (disabled|suspended)",
    re.MULTILINE,
)

# The reporting MTA says it has no report to give (Postfix's bounce daemon writes this line when
# the delivery log for the message is missing): nothing is known, not even vaguely.
NO_REPORT = re.compile(r"delivery report unavailable")
