"""The classification table: evidence → reason word. Data only; classify.py walks it.

Text rules are sentence patterns that MTAs and mail services really write in their replies and
bounce reports; each row names where the pattern comes from. They are tried in order and the
first match wins, so the specific rows come before the general ones. When no sentence matches,
the RFC 3463 enhanced status code decides (STATUS_RULES), and last of all the basic reply code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANY = "*"


@dataclass(frozen=True, slots=True)
class Rule:
    reason: str
    pattern: re.Pattern[str]
    phase: str = ANY  # SMTP command the reply answered (connect, helo, mail, rcpt, data), or ANY
    source: str = ""


def _rule(reason: str, regex: str, phase: str = ANY, source: str = "") -> Rule:
    return Rule(reason, re.compile(regex, re.IGNORECASE), phase, source)


TEXT_RULES: tuple[Rule, ...] = (
    # --- not a recipient problem but the sending client: reverse DNS -------------------------
    _rule("requireptr", r"reverse (dns|lookup)|\bptr\b.{0,40}(record|lookup|missing|fail)"
          r"|no ptr|cannot find your hostname|client host rejected: cannot find|"
          r"not have a reverse|rdns|ip name lookup failed|hostname.{0,20}does not resolve",
          source="Postfix reject_unknown_client_hostname; Google 5.7.25; Yahoo/AOL rDNS replies"),
    # --- SPF / DKIM / DMARC ------------------------------------------------------------------
    _rule("authfailure", r"\bspf\b.{0,60}(fail|not (pass|permit|authori[sz]ed)|check)|"
          r"\bdmarc\b|\bdkim\b.{0,40}(fail|invalid|not|signature)|sender policy framework|"
          r"not (designated|authori[sz]ed) (to send|permitted sender)|unauthenticated email",
          source="RFC 7208 §8.4 (550 5.7.23), RFC 7489 §7.3, Google 5.7.26, Microsoft 5.7.509"),
    # --- message content ---------------------------------------------------------------------
    _rule("virusdetected", r"\bvirus\b|malware|infected|\bmalicious\b",
          source="ClamAV/Amavis and hosted filters"),
    _rule("spamdetected", r"\bspam\b|junk mail|bulk mail|unsolicited|spamassassin|"
          r"message content rejected|content.{0,20}(looks|appears|classified).{0,20}spam|"
          r"high probability of being spam|\bUCE\b",
          source="SpamAssassin, Gmail 5.7.1 'likely unsolicited', Yahoo, Exchange Online"),
    # --- size and limits -----------------------------------------------------------------------
    _rule("mesgtoobig", r"message (size|length) exceeds|message (is )?too (big|large)|"
          r"exceeds (the )?(maximum|fixed) (allowed )?(message )?size|size limit|"
          r"message file too big|mail size|size exceeds", source="RFC 1870 §6 552 5.3.4; Postfix, Exim"),
    _rule("mailboxfull", r"(mailbox|mail ?box|inbox|mail folder|user|account|disk)"
          r".{0,30}(full|quota|over (the )?(quota|limit)|storage)|quota exceeded|"
          r"over ?quota|exceeded (the )?(storage|quota)|insufficient (disk )?space|"
          r"out of (storage|space)|not enough (storage|space)",
          source="RFC 3463 X.2.2; Postfix virtual 'Mailbox full', Gmail 'OverQuotaTemp'"),
    # --- the recipient ---------------------------------------------------------------------------
    _rule("hasmoved", r"has moved|no longer (at|with)|address (has )?changed|moved to",
          source="RFC 5321 §3.4 551 User not local; please try <forward-path>"),
    _rule("suspend", r"(account|mailbox|user|address).{0,30}(suspended|disabled|inactive|deactivated|"
          r"expired|locked|frozen|blocked)|is (currently )?(suspended|disabled|inactive)|"
          r"not active|temporarily (disabled|unavailable)",
          source="Gmail 'account ... disabled', Yahoo 'inactive', Exchange 'disabled'"),
    _rule("userunknown", r"user ?unknown|unknown (user|recipient|local.?part|mailbox|address)|"
          r"no such (user|mailbox|recipient|address|account|person)|"
          r"(user|mailbox|recipient|address|account).{0,40}(does not exist|doesn't exist|"
          r"not exist|not found|unknown|is unavailable|invalid|not valid)|"
          r"invalid (recipient|mailbox|address|user)|not a valid (recipient|mailbox|user)|"
          r"recipient (address )?rejected|no mailbox|mailbox unavailable|"
          r"not listed in|unrouteable address|unknown or illegal alias|no valid recipients",
          source="Postfix 'User unknown in local recipient table', Exim 'Unrouteable address', "
          "sendmail '... User unknown', Gmail 5.1.1, Exchange RESOLVER.ADR.RecipNotFound"),
    # --- domains and routing -----------------------------------------------------------------------
    _rule("notaccept", r"null mx|does not accept (any )?mail|accepts no mail|no mail (is )?accepted",
          source="RFC 7505 §3 (556 5.1.10)"),
    _rule("hostunknown", r"host(name)? (not found|unknown)|unknown host|domain (not found|"
          r"does not exist|unknown)|name or service not known|nxdomain|no such (domain|host)|"
          r"unrouteable mail domain|unknown domain|domain name not found|host not found",
          source="Postfix 'Host or domain name not found', Exim 'unrouteable mail domain'"),
    _rule("norelaying", r"relay(ing)? (access )?(denied|not permitted|prohibited|not allowed)|"
          r"not permitted to relay|unable to relay|we do not relay|"
          r"not (a )?(local|our) (domain|host)|cannot relay",
          source="Postfix 554 5.7.1 'Relay access denied', sendmail 550 5.7.1 'Relaying denied'"),
    _rule("toomanyconn", r"too many (connections|concurrent|sessions|messages|recipients|mails)|"
          r"rate limit|(connection|message) (rate|limit)|try again later.{0,20}rate|"
          r"exceeded .{0,20} rate|throttl",
          source="Postfix anvil 421 4.7.0, Gmail 4.7.28, Yahoo TS01/TS02"),
    _rule("blocked", r"block ?list|black ?list|\bRBL\b|spamhaus|spamcop|barracuda|"
          r"(your|client|sender'?s?) (ip|host).{0,40}(blocked|rejected|listed|banned|denied)|"
          r"blocked using|ip .{0,20}(is |was )?(listed|blocked|banned)|"
          r"connection (refused|rejected|denied)|access denied|poor reputation|reputation",
          source="Postfix reject_rbl_client 'blocked using', Spamhaus, Microsoft S3140"),
    _rule("expired", r"retry time(out)? exceeded|could not be delivered (with)?in|"
          r"message expired|delivery time expired|too long in queue|queue lifetime|"
          r"gave up|timeout waiting",
          source="Exim 'retry timeout exceeded', sendmail 'Cannot send message for 5 days'"),
    _rule("networkerror", r"(connection|network).{0,20}(timed out|timeout|reset|lost)|"
          r"mail loop|loops back to myself|too many hops|dns (error|failure|lookup)|"
          r"lookup failed|no route to host",
          source="Postfix 'loops back to myself', Exim 'Too many Received headers', RFC 5321 §6.3"),
    _rule("securityerror", r"authentication (required|failed)|must (be )?authenticat|"
          r"auth(entication)? credentials invalid|login failed",
          source="RFC 4954 §6 530 5.7.0 / 535 5.7.8"),
    _rule("rejected", r"sender (address )?(rejected|denied|refused|not allowed|unknown)|"
          r"(domain|address) of sender|sender domain|not owned by user|"
          r"sender.{0,20}(verify|verification) failed|invalid sender",
          source="Postfix 553 5.7.1 'Sender address rejected: not owned by user', "
          "reject_unknown_sender_domain"),
    _rule("systemfull", r"(disk|queue|system) (is )?full|insufficient system storage",
          source="RFC 3463 X.3.1, RFC 5321 452"),
    _rule("mailererror", r"procmail|mailer error|\bpipe\b|command (died|failed)|"
          r"exit (code|status)|deliver(y)? to (a )?(pipe|program)",
          source="sendmail 'mailer prog died', Postfix pipe(8), Exim pipe transport"),
    _rule("policyviolation", r"policy|prohibited|not allowed|attachment", source="generic"),
)

# RFC 3463 §3: enhanced status code → reason, most specific first (X.Y.Z before X.Y).
STATUS_RULES: dict[str, str] = {
    "1.1": "userunknown",     # RFC 3463 X.1.1 bad destination mailbox address
    "1.2": "hostunknown",     # X.1.2 bad destination system address
    "1.3": "userunknown",     # X.1.3 bad destination mailbox address syntax
    "1.4": "userunknown",     # X.1.4 destination mailbox address ambiguous
    "1.6": "hasmoved",        # X.1.6 destination mailbox has moved
    "1.7": "rejected",        # X.1.7 bad sender's mailbox address syntax
    "1.8": "rejected",        # X.1.8 bad sender's system address
    "1.10": "notaccept",      # RFC 7505 §3 X.1.10 recipient address has null MX
    "2.1": "suspend",         # X.2.1 mailbox disabled, not accepting messages
    "2.2": "mailboxfull",     # X.2.2 mailbox full
    "2.3": "mesgtoobig",      # X.2.3 message length exceeds administrative limit
    "2.4": "mailererror",     # X.2.4 mailing list expansion problem
    "3.1": "systemfull",      # X.3.1 mail system full
    "3.2": "systemerror",     # X.3.2 system not accepting network messages
    "3.3": "systemerror",     # X.3.3 system not capable of selected features
    "3.4": "mesgtoobig",      # X.3.4 message too big for system
    "3.5": "systemerror",     # X.3.5 system incorrectly configured
    "4.1": "networkerror",    # X.4.1 no answer from host
    "4.2": "networkerror",    # X.4.2 bad connection
    "4.3": "networkerror",    # X.4.3 directory server failure (DNS)
    "4.4": "hostunknown",     # X.4.4 unable to route
    "4.5": "systemerror",     # X.4.5 mail system congestion
    "4.6": "networkerror",    # X.4.6 routing loop detected
    "4.7": "expired",         # X.4.7 delivery time expired
    "5.0": "syntaxerror",     # X.5.0 other or undefined protocol status
    "5.1": "syntaxerror",     # X.5.1 invalid command
    "5.2": "syntaxerror",     # X.5.2 syntax error
    "5.3": "exceedlimit",     # X.5.3 too many recipients
    "5.4": "syntaxerror",     # X.5.4 invalid command arguments
    "6.0": "contenterror",    # X.6.0 other or undefined media error
    "6.1": "contenterror",    # X.6.1 media not supported
    "6.2": "contenterror",    # X.6.2 conversion required and prohibited
    "7.0": "securityerror",   # X.7.0 other or undefined security status
    "7.1": "rejected",        # X.7.1 delivery not authorized, message refused
    "7.2": "policyviolation", # X.7.2 mailing list expansion prohibited
    "7.4": "securityerror",   # X.7.4 security features not supported
    "7.5": "securityerror",   # X.7.5 cryptographic failure
    "7.7": "securityerror",   # X.7.7 message integrity failure
    "7.8": "securityerror",   # RFC 4954 §6 X.7.8 authentication credentials invalid
    "7.9": "securityerror",   # RFC 4954 X.7.9 mechanism too weak
    "7.10": "failedstarttls", # RFC 5248 X.7.10 encryption needed
    "7.11": "failedstarttls", # RFC 4954 X.7.11 encryption required for mechanism
    "7.13": "suspend",        # RFC 5248 X.7.13 user account disabled
    "7.20": "authfailure",    # RFC 7372 X.7.20 no passing DKIM signature
    "7.21": "authfailure",    # RFC 7372 X.7.21 no acceptable DKIM signature
    "7.22": "authfailure",    # RFC 7372 X.7.22 no valid author-matched DKIM signature
    "7.23": "authfailure",    # RFC 7372 X.7.23 SPF validation failed
    "7.24": "authfailure",    # RFC 7372 X.7.24 SPF validation error
    "7.25": "requireptr",     # RFC 7372 X.7.25 reverse DNS validation failed
    "7.26": "authfailure",    # RFC 7372 X.7.26 multiple authentication checks failed
    "7.27": "notaccept",      # RFC 7505 §3 X.7.27 sender address has null MX
}

# RFC 5321 §4.2.3: basic reply codes that name a cause on their own.
CODE_RULES: dict[int, str] = {
    421: "systemerror",  # service not available, closing channel
    450: "onhold",       # mailbox unavailable (busy / policy)
    451: "systemerror",  # local error in processing
    452: "systemfull",   # insufficient system storage
    500: "syntaxerror",
    501: "syntaxerror",
    502: "syntaxerror",
    503: "syntaxerror",
    504: "syntaxerror",
    521: "notaccept",    # RFC 7504 §3 host does not accept mail
    550: "onhold",       # mailbox unavailable: not enough on its own
    551: "hasmoved",     # user not local
    552: "mailboxfull",  # exceeded storage allocation
    553: "rejected",     # mailbox name not allowed (submission: sender not owned)
    554: "onhold",       # transaction failed
    556: "notaccept",    # RFC 7504 §3 domain does not accept mail
}
