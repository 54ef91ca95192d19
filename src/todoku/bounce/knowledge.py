"""What the bounce analyzer knows, as data: enhanced status codes, phrases, vendors' code tables.

classify.py scores a bounce against these tables; nothing here is code. Every entry says where
it comes from, so that what the analyzer knows can be checked and measured:

* ``doc``: the RFC, the IANA registry or the vendor's published page it is written from. Such
  an entry is knowledge whatever the corpus says, and is always used.
* ``seen``: the families of bounces (the corpus label's ``module``: an MTA or a mail service) in
  whose reports the phrase was seen saying that reason (``bench/rule_coverage.py`` measures it
  and flags declarations that drifted). An entry seen in one family only is a description of
  that family's wording: leave-one-family-out accuracy (``bench/explain_accuracy.py``) drops it
  when classifying that family, which is what an unseen MTA would meet. An entry seen nowhere
  is general MTA wording written without a sample; it is always used.

Phrases are read in lower-cased text with white space runs as one space. Most are plain
substrings; a phrase that needs more is a regular expression, and declares ``words``: groups of
literal words of which every match holds at least one each, the rarest group first. The
classifier runs the expression only on a text that holds them, which turns most phrases away
with a few substring tests (tests/bounce/test_prefilter.py checks that the words are needed). A
regular expression without ``words`` is run on every text.
"""

from __future__ import annotations

from dataclasses import dataclass

RFC3463 = "RFC 3463"
IANA = "https://www.iana.org/assignments/smtp-enhanced-status-codes/ (IANA registry)"
MICROSOFT_NDR = (
    "https://learn.microsoft.com/en-us/troubleshoot/exchange/email-delivery/ndr/"
    "non-delivery-reports-in-exchange-online"
)
GOOGLE_SMTP = "https://support.google.com/a/answer/3726730"
YAHOO_SMTP = "https://senders.yahooinc.com/smtp-error-codes/"
# MTAs' own sentences, cited by the source file that writes them (the wording is the program's)
# or the chapter of the MTA's manual that describes them.
_POSTFIX_SRC = "https://github.com/vdukhovni/postfix/blob/master/postfix/src/"
_EXIM_SRC = "https://github.com/Exim/exim/blob/master/src/src/"
_EXIM_SPEC = "https://www.exim.org/exim-html-current/doc/html/spec_html/"
_QMAIL_SRC = "https://github.com/notqmail/notqmail/blob/master/"
POSTFIX_SMTP = f"{_POSTFIX_SRC}smtp/smtp_proto.c ('host X refused to talk to me': refused greeting)"
POSTFIX_DNS = f"{_POSTFIX_SRC}dns/dns_lookup.c"
RESOLVER_TRY_AGAIN = f"{_POSTFIX_SRC}dns/dns_strerror.c (hstrerror(3) TRY_AGAIN)"
EXIM_SMTP = f"{_EXIM_SRC}transports/smtp.c (retry: hosts failing for a long time)"
EXIM_DNSLOOKUP = f"{_EXIM_SRC}routers/dnslookup.c"
EXIM_ROUTERS = f"{_EXIM_SPEC}ch-generic_options_for_routers.html ('Unrouteable address')"
EXIM_PIPE = f"{_EXIM_SPEC}ch-the_pipe_transport.html"
EXIM_PARSE = f"{_EXIM_SRC}parse.c (malformed address: X may not follow Y)"
EXIM_CONTENT_SCAN = f"{_EXIM_SPEC}ch-content_scanning_at_acl_time.html ('contains a virus')"
QMAIL_REMOTE = (
    f"{_QMAIL_SRC}qmail-remote.c (perm_nomx #5.4.4, temp_noconn #4.4.1; "
    "'Connected to X but sender was rejected')"
)
QMAIL_SEND = (
    f"{_QMAIL_SRC}qmail-send.c "
    "('I'm not going to try again; this message has been in the queue too long.')"
)
QMAIL_LOCAL = f"{_QMAIL_SRC}qmail-local.c ('Sorry, no mailbox here by that name. (#5.1.1)')"
OPENSMTPD_MTA = (
    "https://github.com/OpenSMTPD/OpenSMTPD/blob/master/usr.sbin/smtpd/mta.c "
    "(and its scheduler: the delivery errors)"
)
AWS_SES_ERRORS = "https://docs.aws.amazon.com/ses/latest/dg/troubleshoot-error-messages.html"
# Google Groups refuses a post when the group does not exist or the sender may not post to it,
# in the sender's language, always pointing to the Groups help centre.
GOOGLE_GROUPS = "https://support.google.com/groups/ (Google Groups: posting permissions)"
RFC5782 = "RFC 5782 (DNS Blacklists and Whitelists)"
SPAMHAUS = "https://www.spamhaus.org/ (DNSBL operator: a refusal citing it lists the client's IP)"
URI_DNSBL = "RFC 5782 §2.2 (URI DNSBLs); https://uribl.com/, https://www.surbl.org/"
SENDMAIL_PROTO = "sendmail cf/m4/proto.m4 (client address whose name does not resolve)"
# Cox's error-code table (the bounce itself points to its current copy at
# https://www.cox.com/residential/support/email-error-codes.html).
COX_ERROR_CODES = "http://postmaster.cox.net/confluence/display/postmaster/Error+Codes"
AWS_SES_HEADERS = "https://docs.aws.amazon.com/ses/latest/dg/header-fields.html"
SYSEXITS = (
    "https://man.freebsd.org/cgi/man.cgi?query=sysexits&sektion=3 (a delivery program's exit "
    "status, which sendmail reports alone as the diagnostic: 'X-Unix; 71')"
)
OUTLOOK_COM_POSTMASTER = "https://sendersupport.olc.protection.outlook.com/pm/troubleshooting.aspx"


@dataclass(frozen=True, slots=True)
class Phrase:
    pattern: str  # a substring, or (with any of . ^ $ * + ? { } [ ] \ | ( )) a regular expression
    # For a regular expression: groups of words of which every match contains one each.
    words: tuple[tuple[str, ...], ...] = ()
    seen: tuple[str, ...] = ()  # corpus families whose bounces say it (label "module")
    doc: str = ""  # the documentation it is written from: always used


@dataclass(frozen=True, slots=True)
class Phrases:
    """Phrases that name one reason. ``weak``: canned wording many causes share ("Service
    unavailable", "policy"): any specific phrase outranks it. Groups earlier in PHRASES are more
    specific: on an equal score the earlier one wins."""

    reason: str
    phrases: tuple[Phrase, ...]
    weak: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    """What an enhanced status code (class.subject.detail, the class left out) says."""

    reason: str
    meaning: str  # the registry's title
    strength: int  # 3: names one cause; 2: names a kind of cause; 1: vague, yields to words
    doc: str = RFC3463


@dataclass(frozen=True, slots=True)
class Vendor:
    """A mail service's own codes, used only when the bounce comes from that service (one of
    ``hosts`` is the remote host, or is named in the report)."""

    name: str
    hosts: tuple[str, ...]  # lower-case host-name suffixes (or tokens) that identify it
    codes: dict[str, str]  # the vendor's code (an enhanced status code or a bracketed tag) → reason
    doc: str
    # The reason of the vendor's own notice when it carries no code: a service that refuses for
    # one cause only and says so in words that change with the language (Google Groups).
    default: str = ""


# RFC 3463 §3 (and the IANA registry that extends it): subject.detail → what it names.
STATUS: dict[str, Status] = {
    "1.0": Status("userunknown", "Other address status", 1),
    "1.1": Status("userunknown", "Bad destination mailbox address", 3),
    "1.2": Status("hostunknown", "Bad destination system address", 3),
    "1.3": Status("userunknown", "Bad destination mailbox address syntax", 3),
    "1.4": Status("userunknown", "Destination mailbox address ambiguous", 2),
    "1.6": Status("hasmoved", "Destination mailbox has moved, no forwarding address", 3),
    "1.7": Status("rejected", "Bad sender's mailbox address syntax", 4),
    "1.8": Status("rejected", "Bad sender's system address", 4),
    "1.10": Status("notaccept", "Recipient address has null MX", 3, "RFC 7505 §3"),
    "2.0": Status("onhold", "Other or undefined mailbox status", 1),
    "2.1": Status("suspend", "Mailbox disabled, not accepting messages", 2),
    "2.2": Status("mailboxfull", "Mailbox full", 3),
    "2.3": Status("exceedlimit", "Message length exceeds administrative limit", 4),
    "2.4": Status("mailererror", "Mailing list expansion problem", 2),
    "3.0": Status("systemerror", "Other or undefined mail system status", 1),
    "3.1": Status("systemfull", "Mail system full", 3),
    "3.2": Status("systemerror", "System not accepting network messages", 2),
    "3.3": Status("systemerror", "System not capable of selected features", 2),
    "3.4": Status("mesgtoobig", "Message too big for system", 3),
    "3.5": Status("systemerror", "System incorrectly configured", 2),
    "4.0": Status("networkerror", "Other or undefined network or routing status", 1),
    "4.1": Status("networkerror", "No answer from host", 2),
    "4.2": Status("networkerror", "Bad connection", 2),
    "4.3": Status("networkerror", "Directory server failure", 2),
    "4.4": Status("hostunknown", "Unable to route", 2),
    "4.5": Status("systemerror", "Mail system congestion", 2),
    "4.6": Status("networkerror", "Routing loop detected", 3),
    "4.7": Status("expired", "Delivery time expired", 3),
    "5.0": Status("syntaxerror", "Other or undefined protocol status", 1),
    "5.1": Status("syntaxerror", "Invalid command", 1),
    "5.2": Status("syntaxerror", "Syntax error", 1),
    "5.3": Status("exceedlimit", "Too many recipients", 4),
    "5.4": Status("syntaxerror", "Invalid command arguments", 1),
    "6.0": Status("contenterror", "Other or undefined media error", 2),
    "6.1": Status("contenterror", "Media not supported", 2),
    "6.2": Status("contenterror", "Conversion required and prohibited", 2),
    "7.0": Status("securityerror", "Other or undefined security status", 1),
    "7.1": Status("securityerror", "Delivery not authorized, message refused", 1),
    "7.2": Status("policyviolation", "Mailing list expansion prohibited", 2),
    "7.4": Status("securityerror", "Security features not supported", 2),
    "7.5": Status("securityerror", "Cryptographic failure", 2),
    "7.6": Status("securityerror", "Cryptographic algorithm not supported", 2),
    "7.7": Status("securityerror", "Message integrity failure", 2),
    "7.8": Status("securityerror", "Authentication credentials invalid", 2, "RFC 4954 §6"),
    "7.9": Status("securityerror", "Authentication mechanism is too weak", 2, "RFC 4954 §6"),
    "7.10": Status("failedstarttls", "Encryption Needed", 3, "RFC 5248"),
    "7.11": Status(
        "failedstarttls",
        "Encryption required for requested authentication mechanism",
        3,
        "RFC 4954 §6",
    ),
    "7.13": Status("suspend", "User Account Disabled", 3, "RFC 5248"),
    "7.20": Status("authfailure", "No passing DKIM signature found", 4, "RFC 7372"),
    "7.21": Status("authfailure", "No acceptable DKIM signature found", 4, "RFC 7372"),
    "7.22": Status("authfailure", "No valid author-matched DKIM signature found", 4, "RFC 7372"),
    "7.23": Status("authfailure", "SPF validation failed", 4, "RFC 7372"),
    "7.24": Status("authfailure", "SPF validation error", 4, "RFC 7372"),
    "7.25": Status("requireptr", "Reverse DNS validation failed", 4, "RFC 7372"),
    "7.26": Status("authfailure", "Multiple authentication checks failed", 4, "RFC 7372"),
    "7.27": Status("notaccept", "Sender address has null MX", 4, "RFC 7505 §3"),
    "7.28": Status("speeding", "Mail flood detected", 4, IANA),
    "7.30": Status("failedstarttls", "REQUIRETLS support required", 3, "RFC 8689 §5"),
}

# RFC 5321 §4.2.3: basic reply codes that say something on their own (little: the last resort).
REPLY_CODES: dict[int, str] = {
    421: "systemerror",  # service not available, closing channel
    450: "onhold",  # mailbox unavailable (busy / policy)
    451: "systemerror",  # local error in processing
    452: "systemfull",  # insufficient system storage
    500: "syntaxerror",
    501: "syntaxerror",
    502: "syntaxerror",
    503: "syntaxerror",
    504: "syntaxerror",
    521: "notaccept",  # RFC 7504 §3 host does not accept mail
    550: "onhold",  # mailbox unavailable: not enough on its own
    551: "hasmoved",  # user not local
    552: "mailboxfull",  # exceeded storage allocation
    553: "rejected",  # mailbox name not allowed (submission: sender not owned)
    554: "onhold",  # transaction failed
    556: "notaccept",  # RFC 7504 §3 domain does not accept mail
}

# fmt: off
PHRASES: tuple[Phrases, ...] = (
    Phrases('blocked', (
        Phrase('gr[ae]y[ -]?list', words=(('list',),)),
    ), note="RFC 6647; Postgrey 'Greylisted, see http://postgrey...', '451 4.7.1 Greylisted, please try again later'"),
    Phrases('spamdetected', (
        Phrase('black ?listed (url|uri|link|domain in)', words=(('listed ',), ('black',), ('domain in', 'link', 'uri', 'url')), seen=('IMailServer',)),
        Phrase('\\b(uribl|surbl)\\b', words=(('surbl', 'uribl'),), seen=('IMailServer',), doc=URI_DNSBL),
    ), note="URI blocklists (URIBL, SURBL) list domains found in message bodies: a refusal citing one is about the content, not the client"),
    Phrases('blocked', (
        Phrase('block ?list', words=(('block',), ('list',)), doc=RFC5782),
        Phrase('(client|source) ?(ip|host).{0,40}(blocked|listed|banned)', words=(('client', 'source'), ('blocked', 'banned', 'listed')), seen=('AmazonSES', 'FrancePTT', 'Gmail')),
        Phrase('(ip|host|client|server|you|your)\\b.{0,30}black ?listed|black ?listed (by|at|in|on)\\b', words=(('listed',),), seen=('Sendmail',), doc=RFC5782),
        Phrase('dnsbl', seen=('AmazonSES', 'Postfix'), doc=RFC5782),
        Phrase('\\brbl\\b', words=(('rbl',),), seen=('AmazonSES',)),
        Phrase('spamhaus', seen=('GoDaddy',), doc=SPAMHAUS),
        Phrase('spamcop'),
        Phrase('blocked using', seen=('AmazonSES', 'Gmail')),
        Phrase('banned sending', seen=('Microsoft', 'qmail'), doc=MICROSOFT_NDR),
        Phrase('ip .{0,20}(is |was )?(listed|banned)', words=(('banned', 'listed'), ('ip ',)), seen=('Sendmail',)),
        Phrase('blocked for abuse', seen=('Exim',)),
        Phrase('^\\d{3}[ -]blocked\\b', words=(('blocked',),), seen=('Postfix',)),
        Phrase('bloquee', seen=('FrancePTT',)),
        Phrase('refused to talk to me', seen=('FrancePTT', 'Postfix'), doc=POSTFIX_SMTP),
        Phrase('which is an open relay', seen=('V5sendmail',)),
        Phrase('helo command rejected'),
        Phrase('invalid helo'),
        Phrase('bad helo'),
    ), note="Postfix reject_rbl_client 'blocked using', Postfix 'refused to talk to me', Spamhaus/SORBS listings, Microsoft 5.7.606 'banned sending IP', Proofpoint, Orange, open-relay lists 'no access from mail server [ip] which is an open relay', Postfix smtpd_helo_restrictions '504 5.5.2 <x>: Helo command rejected: need fully-qualified hostname' (the client's HELO name: 'Host not found' after it is about the client, not the recipient's domain)"),
    Phrases('networkerror', (
        Phrase("type '(a|aaaa)' lookup of \\S+ responded with code noerror", words=((' responded with code noerror',), ("' lookup of ",), ("type '",)), seen=('GSuite', 'RFC3464')),
    ), note="Gmail 'DNS type 'a' lookup of X responded with code NOERROR'"),
    Phrases('notaccept', (
        Phrase('responded with code noerror', seen=('GSuite', 'RFC3464')),
        Phrase('null mx', seen=('GSuite', 'RFC3464')),
        Phrase('does not accept (any )?mail', words=(('does not accept ',), ('mail',)), seen=('MessagingServer', 'Sendmail')),
        Phrase('accepts no mail'),
        Phrase('(mx|srv) record indicated no smtp service', words=((' record indicated no smtp service',),), seen=('MailRu',), doc=EXIM_DNSLOOKUP),
        Phrase('not accepting network messages', seen=('DragonFly',), doc=RFC3463),
        Phrase("couldn't find a mail exchanger", seen=('qmail',), doc=QMAIL_REMOTE),
        Phrase('no mx found', seen=('OpenSMTPD',), doc=OPENSMTPD_MTA),
    ), note="RFC 7505 §3 (556 5.1.10), RFC 3463 X.3.2, qmail 'couldn't find a mail exchanger or IP address', Exim 'no SMTP service', Gmail 'responded with code NOERROR'"),
    Phrases('networkerror', (
        Phrase('hop count exceeded', seen=('Domino', 'X2', 'X6')),
        Phrase('routing loop', seen=('Domino',), doc=RFC3463),
        Phrase('mail loop', seen=('RFC3464', 'X2', 'X6')),
        Phrase('loops? back to myself', words=((' back to myself',), ('loop',))),
        Phrase('too many (hops|received headers)', words=(('too many ',), ('received headers', 'hops')), seen=('Sendmail',)),
        Phrase('dns query failed', seen=('Office365',)),
        Phrase('host not found, try again', seen=('Postfix',), doc=RESOLVER_TRY_AGAIN),
        Phrase('malformed or unexpected name server reply', seen=('Postfix',), doc=POSTFIX_DNS),
        Phrase('network error on destination', seen=('OpenSMTPD',), doc=OPENSMTPD_MTA),
        Phrase('responded with code (nxdomain|servfail)', words=(('responded with code ',), ('nxdomain', 'servfail')), seen=('GSuite', 'RFC3464')),
        Phrase('host name lookup failure', seen=('RFC3464', 'Sendmail')),
    ), note="Postfix 'mail for X loops back to myself', Exim 'Too many Received headers', Domino 'Maximum hop count', Gmail 'DNS Error ... NXDOMAIN', RFC 5321 §6.3, sendmail 'Deferred: Name server: X: host name lookup failure' (the cause behind a give-up)"),
    Phrases('mailererror', (
        Phrase('mailer error', seen=('DragonFly', 'Sendmail')),
        Phrase('procmail', seen=('Postfix',), doc='https://manpages.debian.org/stable/procmail/procmail.1.en.html (the local delivery agent; its errors start "procmail:")'),
        Phrase('mailer \\S+ died', words=(('mailer ',), (' died',))),
        Phrase('command (died|failed)', words=(('command ',), ('failed', 'died'))),
        Phrase('exited with'),
        Phrase('deliver(y)? to (a )?(pipe|program)', words=(('deliver',), (' to ',), ('rogram', 'ipe'))),
        Phrase('pipe to \\|', words=(('pipe to |',),), seen=('Exim',), doc=EXIM_PIPE),
    ), note="sendmail 'mailer prog died with signal', Exim pipe transport, Diagnostic-Code x-unix (a bare exit status)"),
    Phrases('mailererror', (
        Phrase('^\\d{1,3}$', seen=('Sendmail',), doc=SYSEXITS),
    ), note='Diagnostic-Code x-unix: a bare exit status'),
    Phrases('rejected', (
        Phrase('from a different address or alias', seen=('GoogleWorkspace',)),
        Phrase("'send mail as'", seen=('GoogleWorkspace',)),
    ), note="Gmail/Google Workspace 'You're sending this from a different address or alias using the 'Send mail as' feature'"),
    Phrases('systemfull', (
        Phrase('insufficient (disk|system) (space|storage)', words=(('insufficient ',), ('system', 'disk'), ('torage', 'pace')), seen=('Sendmail',), doc='RFC 5321 §4.2.3 (452)'),
        Phrase('(disk|queue|system) (is )?full', words=(('full',), ('system', 'queue', 'disk')), doc=RFC3463),
    ), note="RFC 3463 X.3.1/X.4.5, sendmail 452 4.4.5 'Insufficient disk space'"),
    Phrases('systemerror', (
        Phrase('internal (system |server )?error', words=(('internal ',), ('error',)), seen=('AmazonWorkMail', 'DragonFly')),
        Phrase('unable to contact ldap', seen=('qmail',), doc='https://github.com/qmail-ldap/qmail-ldap (qmail-lspawn: LDAP server unreachable, #4.4.3)'),
        Phrase('system error', seen=('AmazonWorkMail', 'DragonFly')),
        Phrase('local (configuration|error)', words=(('local ',), ('configuration', 'error'))),
        Phrase('misconfigur'),
        Phrase('config(uration)? error', words=(('config',), (' error',))),
    ), note="RFC 3463 X.3.0/X.3.5, qmail 'Unable to contact LDAP server', RFC 5321 421"),
    Phrases('requireptr', (
        Phrase('reverse (dns|lookup|hostname)', words=(('reverse ',), ('hostname', 'lookup', 'dns')), seen=('Exim',), doc='RFC 7372 X.7.25'),
        Phrase('\\bptr\\b', words=(('ptr',),), seen=('Exim', 'Google', 'Postfix')),
        Phrase('cannot find your (hostname|reverse)', words=(('cannot find your ',), ('hostname', 'reverse'))),
        Phrase('client host rejected: cannot find'),
        Phrase('ip name lookup failed', seen=('Sendmail',), doc=SENDMAIL_PROTO),
        Phrase('rdns', seen=('Exim', 'Postfix')),
        Phrase('mismatches client ip', seen=('Outlook',)),
        Phrase('unverifi?(y|i)able sending ips?', words=(('able sending ip',), ('unverif',)), seen=('Exim',)),
        Phrase('hostname.{0,20}does not resolve', words=(('does not resolve',), ('hostname',))),
        Phrase('no reverse'),
    ), note="Postfix reject_unknown_client_hostname 450 4.7.1, Google 5.7.25, Outlook 'mismatches client ip'"),
    Phrases('badreputation', (
        Phrase('reputation', seen=('Microsoft', 'Postfix')),
        Phrase('likely suspicious', seen=('Postfix',)),
        Phrase('unexpected volume or user complaints', seen=('OpenSMTPD', 'qmail')),
    ), note="Microsoft 4.7.650 'rate limited due to IP reputation', Gmail 5.7.1 'very low reputation', Yahoo 421 4.7.0 [TSS04] 'temporarily deferred due to unexpected volume or user complaints'"),
    Phrases('speeding', (
        Phrase('too many recipients this hour', seen=('GoDaddy',)),
        Phrase('receiving mail at a rate that prevents', doc=GOOGLE_SMTP),
        Phrase('receiving mail too quickly', doc=GOOGLE_SMTP),
        Phrase('sending (too fast|rate)', words=(('sending ',), ('too fast', 'rate'))),
        Phrase('too many messages (in|per)', words=(('too many messages ',),)),
        Phrase('hourly (limit|quota)', words=(('hourly ',), ('limit', 'quota'))),
        Phrase('unusual rate of'),
    ), note="GoDaddy IB607, Yahoo, Gmail 421 4.7.28 'Our system has detected an unusual rate of unsolicited mail originating from your IP address' (a volume limit per sending IP: it says spam, but what it enforces is a rate)"),
    Phrases('toomanyconn', (
        Phrase('too many (connections|concurrent|sessions|simultaneous)', words=(('too many ',), ('simultaneous', 'connections', 'concurrent', 'sessions'))),
        Phrase('connection (frequency|rate|limit)', words=(('connection ',), ('frequency', 'limit', 'rate')), seen=('Postfix', 'Tencent')),
        Phrase('rate limit', seen=('Postfix',)),
        Phrase('throttl'),
        Phrase('try again later.{0,20}rate', words=(('try again later',), ('rate',))),
        Phrase('frequency limited', seen=('Tencent',)),
        Phrase('too many recipients', seen=('Postfix',), doc='RFC 5321 §4.5.3.1.10'),
    ), note="Postfix anvil 421 4.7.0 'Too many connections', Tencent 'Connection frequency limited', RFC 5321 452 too many recipients"),
    Phrases('notcompliantrfc', (
        Phrase('not (rfc ?5322|rfc ?2822|rfc) compliant', words=((' compliant',), ('not ',), ('rfc',)), seen=('Google',), doc=GOOGLE_SMTP),
        Phrase('multiple .{0,20}addresses in from', words=(('addresses in from',), ('multiple ',)), seen=('Postfix', 'Sendmail')),
        Phrase('duplicate header', seen=('Postfix',), doc=AWS_SES_HEADERS),
        Phrase('multiple (subject|from|date|to|message-id) ', words=(('multiple ',),), seen=('Google',), doc=GOOGLE_SMTP),
        Phrase('missing (a )?(required )?(date|from|message-id) header', words=(('missing ',), (' header',), ('message-id', 'date', 'from'))),
    ), note="Gmail 550 5.7.1 'not RFC 5322 compliant', SES 'Duplicate header'"),
    Phrases('spamdetected', (
        Phrase('(rejected|refused|blocked) (due to|because of|as) spam', words=(('rejected', 'blocked', 'refused'), (' spam',)), seen=('RFC3464',)),
        Phrase('spam classification', seen=('RFC3464',)),
    ), note="Google Groups 'Your email to group X was rejected due to spam classification'"),
    Phrases('authfailure', (
        Phrase('\\bspf\\b', words=(('spf',),), seen=('Google', 'Office365', 'Sendmail')),
        Phrase('\\bdmarc\\b', words=(('dmarc',),), seen=('Apple', 'DragonFly', 'Microsoft', 'Postfix', 'Tencent', 'qmail')),
        Phrase('\\bdkim\\b.{0,40}(fail|invalid|not|signature)', words=(('dkim',), ('signature', 'invalid', 'fail', 'not')), seen=('Google',)),
        Phrase('sender policy framework'),
        Phrase('authentication (information|checks?)', words=(('authentication ',), ('information', 'check')), seen=('DragonFly', 'OpenSMTPD', 'Sendmail')),
        Phrase('not (designated|authori[sz]ed) (to send|permitted sender)', words=(('designated', 'authori'), ('permitted sender', 'to send'), ('not ',))),
        Phrase('unauthenticated email', seen=('DragonFly', 'Postfix', 'qmail')),
    ), note='RFC 7208 §8.4 (550 5.7.23), RFC 7489 §7.3, Google 5.7.26, Microsoft 5.7.509'),
    Phrases('virusdetected', (
        Phrase('\\bvirus', words=(('virus',),), seen=('Postfix',), doc=EXIM_CONTENT_SCAN),
        Phrase('malware'),
        Phrase('infected'),
        Phrase('\\bmalicious\\b', words=(('malicious',),)),
    ), note='ClamAV/Amavis and hosted filters'),
    Phrases('contenterror', (
        Phrase('media error', seen=('DragonFly',), doc=RFC3463),
        Phrase('malformed (mime|header)', words=(('malformed ',), ('header', 'mime'))),
        Phrase('invalid mime'),
        Phrase('8-?bit (data|characters) not (allowed|accepted)', words=(('ccepted', 'llowed'), (' not ',), ('bit ',))),
        Phrase('8-?bit data in (the )?(message )?header', words=(('bit data in ',), ('header',))),
        Phrase('improper use of 8-?bit', words=(('improper use of 8',), ('bit',))),
    ), note='RFC 3463 X.6.x'),
    Phrases('policyviolation', (
        Phrase('policy violation', seen=('Postfix', 'Zoho')),
        Phrase('content presents a potential', seen=('Sendmail',), doc=GOOGLE_SMTP),
        Phrase('(attachment|file type|extension).{0,30}(not allowed|prohibited|blocked|rejected)', words=(('attachment', 'extension', 'file type'), ('not allowed', 'prohibited', 'rejected', 'blocked'))),
        Phrase('prohibited (attachment|content)', words=(('prohibited ',), ('attachment', 'content'))),
        Phrase('header error', seen=('Exim', 'Sendmail')),
        Phrase('does not allow external forwarding', doc=MICROSOFT_NDR),
    ), note="Gmail 552 5.7.0 'content presents a potential security issue', X.7.x policy, Microsoft 550 5.7.520 'Your organization does not allow external forwarding'"),
    Phrases('spamdetected', (
        Phrase('\\bspam\\b(?!ming)', words=(('spam',),), seen=('Barracuda', 'DragonFly', 'Exim', 'Postfix', 'RFC3464')),
        Phrase('junk mail'),
        Phrase('bulk mail'),
        Phrase('unsolicited'),
        Phrase('spamassassin'),
        Phrase('message content rejected', seen=('Barracuda', 'RFC3464', 'ReceivingSES', 'Sendmail')),
        Phrase('looks like spam'),
        Phrase('\\buce\\b', words=(('uce',),)),
                Phrase('\\bofr_506\\b', words=(('ofr_506',),), seen=('EinsUndEins', 'FrancePTT')),
        Phrase('迷惑メール(と|として)(判定|判断)', words=(('迷惑メール',),)),
    ), note="SpamAssassin, Gmail 5.7.1 'likely unsolicited', URIBL lookups, Orange 'Mail rejete. Mail rejected. ofr_506' (its code for a message judged to be spam)"),
    Phrases('exceedlimit', (
        Phrase('exceeds (the )?(administrative|per.recipient) limit', words=(('administrative', 'recipient'), ('exceeds ',), (' limit',)), seen=('DragonFly',)),
        Phrase('length exceeds (administrative )?limit', words=(('length exceeds ',), ('limit',)), seen=('DragonFly', 'ReceivingSES'), doc=RFC3463),
        Phrase('recipsizelimit', seen=('Exchange2007',)),
        Phrase('too large for this recipient', seen=('Exchange2007',)),
        Phrase('limit set by recipient', seen=('ReceivingSES',)),
    ), note='RFC 3463 X.2.3, Exchange RESOLVER.RST.RecipSizeLimit'),
    Phrases('mesgtoobig', (
        Phrase('message (size|length) exceeds', words=(('message ',), (' exceeds',), ('length', 'size'))),
        Phrase('message (is |was )?too (big|large)', words=(('message ',), ('too ',), ('large', 'big')), seen=('DragonFly', 'ReceivingSES')),
        Phrase('exceeds (the )?(maximum|fixed) (allowed )?(message )?size', words=(('exceeds ',), ('maximum', 'fixed'), ('size',)), doc='RFC 1870 §6'),
        Phrase('size limit', seen=('EinsUndEins',), doc='RFC 1870 §6 (message size limit)'),
        Phrase('message file too big'),
        Phrase('mail size', seen=('EinsUndEins',)),
        Phrase('size exceeds'),
        Phrase('line limit exceeded', seen=('Exim',), doc='RFC 5321 §4.5.3.1.6 (text line length limit)'),
        Phrase('too big', seen=('DragonFly',), doc=RFC3463),
    ), note='RFC 1870 §6 552 5.3.4; Postfix, Exim, sendmail'),
    Phrases('mailboxfull', (
        Phrase('(mailbox|mail ?box|inbox|mail folder|user|account|recipient).{0,30}(\\bfull\\b|quota|over (the )?limit|exceeds (allowed|the) size)', words=(('exceeds ', 'over ', 'quota', 'full'), ('recipient', 'account', 'inbox', 'mail', 'user')), seen=('AmazonSES', 'AmazonWorkMail', 'Apple', 'DragonFly', 'Exim', 'GMX', 'Gmail', 'IMailServer', 'KDDI', 'MailRu', 'MessagingServer', 'Office365', 'OpenSMTPD', 'Outlook', 'Postfix', 'ReceivingSES', 'X2', 'X4', 'Yahoo', 'Yandex', 'Zoho', 'qmail')),
        Phrase('quota exceeded', seen=('Gmail', 'Postfix', 'RFC3464', 'qmail')),
        Phrase('over ?quota', words=(('quota',), ('over',)), seen=('Apple', 'Google', 'MessagingServer', 'X2')),
        Phrase('exceeded (the |their )?(storage|quota)', words=(('exceeded ',), ('storage', 'quota'))),
        Phrase('(mailbox|inbox) is over its (storage )?limit', words=((' is over its ',), ('limit',), ('mailbox', 'inbox'))),
        Phrase('storage limit'),
        Phrase('insufficient space'),
        Phrase('out of (storage|space)', words=(('out of ',), ('torage', 'pace')), seen=('Google',)),
        Phrase('not enough (storage|space)', words=(('not enough ',), ('torage', 'pace'))),
        Phrase('mailbox exceed', seen=('Biglobe', 'IMailServer')),
        Phrase('(メールボックス|メール容量|容量|ボックス).{0,12}(一杯|いっぱい|満杯|超過|オーバー|不足)', words=(('ボックス', '容量'), ('いっぱい', 'オーバー', '一杯', '不足', '満杯', '超過'))),
    ), note="RFC 3463 X.2.2; Postfix virtual 'Mailbox full', Gmail 'OverQuotaTemp', Japanese carriers' notices (メールボックスが一杯, 容量超過)"),
    Phrases('securityerror', (
        Phrase('authentication (is )?required', words=(('authentication ',), ('required',)), seen=('Exchange2007',)),
        Phrase('must (be )?authenticat', words=(('authenticat',), ('must ',))),
        Phrase('relay through this server without', seen=('MessageLabs',)),
        Phrase('auth(entication)? credentials invalid', words=((' credentials invalid',), ('auth',))),
        Phrase('login failed'),
        Phrase('smtp auth', seen=('MessageLabs',), doc='RFC 4954 (SMTP AUTH; 530 5.7.0 Authentication required)'),
        Phrase('delivery not authori[sz]ed', words=(('delivery not authori',),), seen=('DragonFly',), doc=RFC3463),
    ), note="RFC 4954 §6 530 5.7.0 / 535 5.7.8, MessageLabs, Yahoo/Postfix 'Delivery not authorized, message refused'"),
    Phrases('rejected', (
        Phrase('sender (address )?(rejected|denied|refused|not allowed|unknown|invalid)', words=(('sender ',), ('not allowed', 'rejected', 'invalid', 'refused', 'unknown', 'denied')), seen=('MailRu', 'MessagingServer', 'Office365', 'RFC3464', 'Yahoo')),
        Phrase('(domain|address) of sender', words=((' of sender',), ('address', 'domain')), seen=('Postfix',)),
        Phrase('sender domain'),
        Phrase('not owned by user'),
        Phrase('unroutable sender', seen=('Exim',)),
        Phrase('sender.{0,20}(verify|verification) failed', words=((' failed',), ('sender',), ('verif',))),
        Phrase('invalid sender'),
        Phrase('from: domain is invalid', seen=('Exim',)),
        Phrase('purported responsible address', seen=('Courier',), doc='RFC 4407 §2 (the sender the PRA names)'),
        Phrase('sending to/from an address', seen=('Exim',)),
        Phrase('mail rejected by destination domain', seen=('Zoho',)),
        Phrase('permission to post', seen=('GoogleGroups',)),
        Phrase('\\bgoogle groups(?![a-z])', words=(('google groups',),), seen=('GoogleGroups',)),
        Phrase('from a different address or alias', seen=('GoogleWorkspace',)),
        Phrase('not a member of', seen=('FML',)),
        Phrase('投稿する権限', seen=('GoogleGroups',)),
        Phrase('sender was rejected', seen=('qmail',), doc=QMAIL_REMOTE),
    ), note="Postfix 553 5.7.1 'Sender address rejected: not owned by user', reject_unknown_sender_domain, Exim 'Unroutable sender address', Google Groups, Yahoo TSS04, mailing-list managers 'not a member', qmail 'Connected to X but sender was rejected'"),
    Phrases('hasmoved', (
        Phrase('has moved', seen=('DragonFly',), doc=RFC3463),
        Phrase('no longer (at|with)', words=(('no longer ',),)),
        Phrase('address (has )?changed', words=(('address ',), ('changed',))),
        Phrase('moved to'),
        Phrase('not our (user|customer)', words=(('not our ',), ('customer', 'user')), seen=('Sendmail',)),
        Phrase('user not local', doc='RFC 5321 §3.4'),
    ), note='RFC 5321 §3.4 551 User not local; please try <forward-path>'),
    Phrases('suspend', (
        Phrase('(account|mailbox|user|address)\\S*.{0,40}(suspended|disabled|inactive|deactivated|expired|(temporary|temporarily )?locked|frozen)', words=(('deactivated', 'suspended', 'disabled', 'inactive', 'expired', 'frozen', 'locked'), ('account', 'address', 'mailbox', 'user')), seen=('AmazonSES', 'DragonFly', 'EZweb', 'FrancePTT', 'Google', 'IUA', 'Postfix', 'X2', 'qmail')),
        Phrase('is (currently )?(suspended|disabled|inactive)', words=(('suspended', 'disabled', 'inactive'), ('is ',)), seen=('AmazonSES', 'EZweb', 'Google')),
        Phrase('not active'),
    ), note="Gmail 'account ... disabled', Yahoo 'inactive', RFC 3463 X.2.1"),
    Phrases('norelaying', (
        Phrase('relay(ing)? (access )?(denied|not permitted|prohibited|not allowed)', words=(('not permitted', 'not allowed', 'prohibited', 'denied'), ('relay',)), seen=('AmazonSES', 'Sendmail')),
        Phrase('no relaying'),
        Phrase('not permitted to relay'),
        Phrase('unable to relay'),
        Phrase('we do not relay'),
        Phrase('cannot relay'),
        Phrase('not (a )?(local|our) (domain|host)', words=(('not ',), ('domain', 'host'), ('local', 'our'))),
        Phrase('not configured to relay', seen=('Postfix',)),
        Phrase('insecure mail relay', seen=('V5sendmail',)),
        Phrase('email address is not verified', seen=('Postfix',), doc=AWS_SES_ERRORS),
    ), note="Postfix 554 5.7.1 'Relay access denied', sendmail 550 5.7.1 'Relaying denied', older sendmail anti-relay rulesets '550 Insecure Mail Relay', 'This system is not configured to relay mail', Amazon SES SMTP 554 'Message rejected: Email address is not verified' (it relays only for identities verified with it)"),
    Phrases('hostunknown', (
        Phrase('host(name)? (or domain name )?(not found|unknown)', words=(('not found', 'unknown'), ('host',)), seen=('Aol', 'Postfix', 'Sendmail', 'V5sendmail')),
        Phrase('unknown host'),
        Phrase('domain (not found|does not exist|unknown|is not reachable)', words=(('domain ',), ('is not reachable', 'does not exist', 'not found', 'unknown')), seen=('OpenSMTPD', 'Outlook')),
        Phrase('name or service not known'),
        Phrase('nxdomain'),
        Phrase('no such (domain|host)', words=(('no such ',), ('domain', 'host')), seen=('Courier',)),
        Phrase('unrouteable (mail )?(domain|address)', words=(('unrouteable ',), ('address', 'domain')), seen=('MailRu',), doc=EXIM_ROUTERS),
        Phrase('unknown domain'),
        Phrase('bad destination system', seen=('DragonFly',), doc=RFC3463),
        Phrase('account or domain may not exist', seen=('Exim',)),
        Phrase('^\\d{3} \\S+\\.\\S+ does not exist', words=((' does not exist',),), seen=('Exim',)),
        Phrase('mx records point to non-existent hosts'),
        Phrase('no mx record'),
        Phrase('dns lookup fail'),
    ), note="Postfix 'Host or domain name not found', Exim 'Unrouteable address', RFC 3463 X.1.2, Outlook 'domain is not reachable'"),
    Phrases('userunknown', (
        Phrase('user ?unknown', words=(('unknown',), ('user',)), seen=('Amavis', 'AmazonSES', 'AmazonWorkMail', 'Aol', 'DragonFly', 'EZweb', 'Exim', 'FrancePTT', 'GMX', 'GSuite', 'Gmail', 'InterScanMSS', 'MXLogic', 'MailMarshalSMTP', 'MailRu', 'McAfee', 'MessagingServer', 'Office365', 'OpenSMTPD', 'Outlook', 'Postfix', 'RFC3464', 'SendGrid', 'Sendmail', 'V5sendmail', 'X5', 'X6', 'Yahoo', 'Yandex', 'Zoho', 'mFILTER', 'qmail')),
        Phrase('unknown (user|recipient|local.?part|mailbox|address)', words=(('unknown ',), ('recipient', 'address', 'mailbox', 'local', 'user')), seen=('Exchange2003', 'IMailServer', 'Office365', 'OpenSMTPD', 'Postfix', 'RFC3464', 'Sendmail', 'qmail')),
        Phrase('no such (user|mailbox|recipient|address|account|person)', words=(('no such ',), ('recipient', 'account', 'address', 'mailbox', 'person', 'user')), seen=('MessageLabs', 'V5sendmail', 'X3')),
        Phrase("(user|mailbox|recipient|address|account|userid)\\S*.{0,40}(does not exist|doesn't exist|not exist|not found|wasn.t found|is unknown|invalid|not valid)", words=(("doesn't exist", 'is unknown', 'not exist', 'not valid', 'invalid', 't found'), ('recipient', 'account', 'address', 'mailbox', 'user')), seen=('Aol', 'Apple', 'Exchange2007', 'Facebook', 'GSuite', 'Google', 'Microsoft', 'Office365', 'Postfix', 'RFC3464', 'ReceivingSES', 'V5sendmail')),
        Phrase('invalid (recipient|mailbox|address|user|final delivery)', words=(('invalid ',), ('final delivery', 'recipient', 'address', 'mailbox', 'user')), seen=('Bigfoot', 'FrancePTT', 'IMailServer', 'Sendmail', 'Zoho')),
        Phrase('not a valid (recipient|mailbox|user)', words=(('not a valid ',), ('recipient', 'mailbox', 'user'))),
        Phrase('no mailbox', seen=('qmail',), doc=QMAIL_LOCAL),
        Phrase('mailbox unavailable', seen=('Office365', 'Outlook', 'Sendmail')),
        Phrase("doesn't have an? \\S+ account", words=(("doesn't have a",), (' account',)), seen=('PowerMTA', 'Sendmail')),
        Phrase('unknown or illegal alias', seen=('Exim',)),
        Phrase('no valid recipients', seen=('FrancePTT', 'Sendmail', 'Verizon')),
        Phrase('address rejected', seen=('Amavis', 'DragonFly', 'GSuite', 'MXLogic', 'Microsoft', 'Mimecast', 'OpenSMTPD', 'Postfix', 'RFC3464', 'mFILTER', 'qmail')),
        Phrase('unable to deliver message to', seen=('InterScanMSS',)),
        Phrase('bad destination mailbox', seen=('DragonFly',), doc=RFC3463),
        Phrase('not listed in (the )?(domino directory|public name|address book)', words=(('not listed in ',), ('domino directory', 'address book', 'public name')), seen=('Domino',), doc='HCL Domino router: recipient not listed in the Domino Directory'),
        Phrase('address (you entered )?(couldn.t|could not|can.t|cannot) be found', words=((' be found',), ('address ',)), seen=('GSuite', 'RFC3464')),
        Phrase('destinataire invalide', seen=('FrancePTT', 'Sendmail')),
        Phrase('(宛先|アドレス|ユーザ|アカウント).{0,12}(存在しません|存在しない|見つかりません|不明)', words=(('アカウント', 'アドレス', 'ユーザ', '宛先'), ('見つかりません', '存在しません', '存在しない', '不明'))),
        Phrase('存在しない(メール)?(アドレス|ユーザ|宛先)', words=(('存在しない',), ('アドレス', 'ユーザ', '宛先'))),
    ), note="Postfix 'User unknown in local recipient table', sendmail '... User unknown', Gmail 5.1.1, Exchange RESOLVER.ADR.RecipNotFound, Yahoo 'doesn't have a ... account', Domino 'not listed in Domino Directory', Orange 'destinataire invalide', Japanese carriers' notices (宛先が存在しません)"),
    Phrases('expired', (
        Phrase('retry time(out)? exceeded', words=(('retry time',), (' exceeded',)), seen=('Exim', 'GMX', 'MailRu')),
        Phrase('could not be delivered (with)?in', words=(('could not be delivered ',),)),
        Phrase('message expired', seen=('AmazonSES', 'AmazonWorkMail', 'Exchange2007', 'Office365')),
        Phrase('delivery time expired', doc=RFC3463),
        Phrase('too long in queue'),
        Phrase('queue lifetime'),
        Phrase('envelope expired', seen=('OpenSMTPD',), doc=OPENSMTPD_MTA),
        Phrase('gave up'),
        Phrase('giving up', seen=('DragonFly',)),
        Phrase('have been failing for a long', seen=('Exim',), doc=EXIM_SMTP),
        Phrase('will be retried', seen=('Gmail', 'Zoho')),
        Phrase('did not accept our requests to connect', seen=('GSuite', 'Gmail', 'RFC3464')),
        Phrase('(connection|operation) timed out', words=((' timed out',), ('connection', 'operation')), seen=('AmazonSES', 'AmazonWorkMail', 'MessagingServer', 'Postfix', 'RFC3464', 'SendGrid', 'V5sendmail', 'X1', 'X2', 'Yandex')),
        Phrase('timed out while (receiving|sending)', words=(('timed out while ',), ('receiving', 'sending'))),
        Phrase('unable to connect', seen=('Outlook', 'X2')),
        Phrase('establish an smtp connection', seen=('X2',), doc=QMAIL_REMOTE),
        Phrase('timeout waiting'),
        Phrase('could not (be )?deliver(ed)? for', words=(('could not ',), ('deliver',), (' for',)), seen=('DragonFly', 'RFC3464', 'Sendmail')),
        Phrase('not been delivered .{0,30}(hours|days)', words=(('not been delivered ',), ('hours', 'days'))),
        Phrase('host not reachable', seen=('Zoho',)),
        Phrase('not delivered within', seen=('EZweb',)),
        Phrase('aborted after [\\d.]+ ?(hour|day)', words=(('aborted after ',), ('hour', 'day')), seen=('X3',)),
        Phrase('cannot send message (for|within)', words=(('cannot send message ',), ('within', 'for')), seen=('RFC3464', 'V5sendmail')),
        Phrase('in the queue too long', seen=('X2',), doc=QMAIL_SEND),
        Phrase(r'failed (after )?\d+ (delivery )?attempts', words=(('attempts',), ('failed ',))),
        Phrase('retry time not reached for any host after a long', doc=EXIM_SMTP),
    ), note="Exim 'retry timeout exceeded', sendmail 'Cannot send message for 5 days', Gmail 'Message will be retried', Postfix 'Connection timed out', OpenSMTPD, sendmail 'Cannot send message for 5 days', qmail 'this message has been in the queue too long', Exim 'retry time not reached for any host after a long failure period', Postfix 'conversation with X timed out while receiving the initial server greeting'"),
    Phrases('blocked', (
        Phrase("(client|sender'?s?|your|source) ?(ip|host|address).{0,40}(blocked|rejected|listed|banned|denied)", words=(('rejected', 'blocked', 'banned', 'denied', 'listed'), ('client', 'sender', 'source', 'your')), seen=('AmazonSES', 'FrancePTT', 'Gmail', 'Sendmail')),
        Phrase('blocked (by|for)', words=(('blocked ',),), seen=('Exim', 'FrancePTT')),
        Phrase('spamming', seen=('FrancePTT',)),
        Phrase('smtp server of your isp', seen=('Exim',), doc='RFC 5068 §3.1 (end-user hosts submit through their provider, not to port 25)'),
        Phrase('not accepting connections', seen=('Sendmail',)),
        Phrase('invalid ip for sending', seen=('Yahoo',)),
        Phrase('service refuse', seen=('FrancePTT',)),
        Phrase('relay quota', seen=('Exim',)),
        Phrase("messages from \\S+ weren't sent", words=(('messages from ',), (" weren't sent",)), seen=('EZweb',), doc=OUTLOOK_COM_POSTMASTER),
        Phrase('connection (rejected|denied)', words=(('connection ',), ('rejected', 'denied'))),
        Phrase('all messages from \\S+ will be permanently deferred', words=((' will be permanently deferred',), ('all messages from ',))),
        Phrase('traffic not accepted from this ip', doc=MICROSOFT_NDR),
        Phrase('not in whitelist', doc=GOOGLE_SMTP),
    ), note="Postfix 'Client host rejected', Microsoft S3140, Orange 'Service refuse', Exim relay quota, Yahoo 553 5.7.2 [TSS09] 'All messages from [ip] will be permanently deferred', Microsoft 550 5.7.708 'traffic not accepted from this IP'"),
    Phrases('networkerror', (
        Phrase('(connection|network).{0,20}(reset|lost)', words=(('connection', 'network'), ('reset', 'lost'))),
        Phrase('dns (error|failure|lookup|query)', words=(('failure', 'lookup', 'error', 'query'), ('dns ',)), seen=('GSuite', 'Office365', 'RFC3464')),
        Phrase('lookup failed'),
        Phrase('no route to host', seen=('RFC3464',), doc='https://pubs.opengroup.org/onlinepubs/9699919799/basedefs/errno.h.html (EHOSTUNREACH)'),
    ), note='RFC 5321 §6.3, Postfix'),
    Phrases('syntaxerror', (
        Phrase('malformed address', seen=('Exim',), doc=EXIM_PARSE),
        Phrase('syntax error', doc='RFC 5321 §4.2.2'),
        Phrase('command not recognized'),
    ), note="RFC 5321 §4.2.2 500/501, Exim 'malformed address'"),
    Phrases('filtered', (
        Phrase('message filtered', seen=('ReceivingSES',)),
        Phrase('domain.filter', words=(('domain',), ('filter',)), seen=('EZweb',)),
        Phrase('rejected by a remote mail server', seen=('EZweb',)),
        Phrase('recipient(.s)? preferences', words=((' preferences',), ('recipient',)), seen=('Facebook',), doc='http://postmaster.facebook.com/response_codes (RCP-P2)'),
        Phrase('受信拒否'),
    ), note="SES 'Message Filtered', EZweb domain filter, Facebook RCP-P2 'Refused due to recipient preferences', Japanese carriers' '受信拒否' (the recipient's own refusal settings: docomo, au, SoftBank)"),
    Phrases('onhold', (
        Phrase('(due to|because of) an? recipient error', words=((' recipient error',), ('because of', 'due to')), seen=('RFC3464',)),
    ), note="Firefox Relay '451 4.3.0 This message could not be delivered due to a recipient error. Please try again later.'"),
    Phrases('systemerror', (
        Phrase('service (is )?(currently |temporarily )?unavailable', words=(('unavailable',), ('service ',)), seen=('RFC3464', 'SurfControl')),
    ), weak=True, note="RFC 5321 §4.2.3 421, sendmail 554 'Service unavailable'"),
    Phrases('policyviolation', (
        Phrase('\\bpolicy\\b', words=(('policy',),), seen=('DragonFly', 'Postfix', 'RFC3464', 'YahooInc', 'Zoho')),
        Phrase('prohibited'),
        Phrase('not allowed', seen=('Mimecast',)),
    ), weak=True, note='generic X.7.x wording'),
    Phrases('rejected', (
        Phrase('(?<!access )\\bdenied\\b', words=(('denied',),)),
    ), weak=True, note="generic 'denied'"),
    Phrases('blocked', (
        Phrase('\\bblocked\\b', words=(('blocked',),), seen=('AmazonSES', 'Exim', 'FrancePTT', 'Gmail', 'Postfix')),
        Phrase('^\\d{3}[ -]rejected$', words=(('rejected',),), seen=('Exim',)),
    ), weak=True, note='generic'),
)
# fmt: on

VENDORS: tuple[Vendor, ...] = (
    Vendor(
        "Microsoft",
        (
            "outlook.com",
            "hotmail.com",
            "office365.com",
            "exchangelabs.com",
            "outlook.office365.com",
            "protection.outlook.com",
        ),
        {
            "5.1.10": "userunknown",  # recipient not found by SMTP address lookup
            "5.1.8": "rejected",  # access denied, bad outbound sender (the sender's account)
            "5.2.2": "mailboxfull",  # submission quota / mailbox full
            "5.2.3": "exceedlimit",  # message too large for this recipient
            "5.3.4": "mesgtoobig",
            "5.4.1": "userunknown",  # recipient address rejected: access denied (DBEB)
            "5.4.6": "networkerror",  # routing loop
            "5.4.14": "networkerror",  # hop count exceeded
            "4.4.7": "expired",
            "5.7.12": "rejected",  # sender was not authenticated by organization
            "5.7.23": "authfailure",  # SPF
            "5.7.57": "securityerror",  # client was not authenticated (anonymous mail)
            "5.7.509": "authfailure",  # DMARC reject
            "5.7.520": "policyviolation",  # organisation does not allow external forwarding
            "5.7.606": "blocked",
            "5.7.607": "blocked",
            "5.7.608": "blocked",  # banned sending IP
            "5.7.708": "blocked",  # traffic not accepted from this IP
            "5.7.750": "blocked",  # unregistered domain email restriction
            "4.7.650": "badreputation",
            "4.7.651": "badreputation",  # rate limited, IP reputation
        },
        MICROSOFT_NDR,
    ),
    Vendor(
        "Google",
        ("google.com", "gmail.com", "googlemail.com", "gsmtp"),
        {
            "5.1.1": "userunknown",
            "4.2.2": "mailboxfull",
            "5.2.2": "mailboxfull",
            "5.2.3": "mesgtoobig",  # message exceeded Google's message size limits
            "5.1.2": "hostunknown",  # could not find the recipient domain
            "5.7.26": "authfailure",
            "5.7.27": "authfailure",
            "5.7.25": "requireptr",
            "4.7.28": "speeding",
            "5.7.28": "speeding",
        },
        GOOGLE_SMTP,
    ),
    Vendor(
        "Cox",
        ("cox.net", "cox.com"),
        {
            # Its refusals end in "AUP#<code>"; these name the sending IP as blocked: by Cox
            # for spam-like behaviour (CXBL; CDRBL for up to 24 hours) or for its listing in
            # the DNSBLs Cox consults (IPBL<bits>: Spamhaus Zen, Return Path, ivmSIP, Cloudmark).
            "cxbl": "blocked",
            "cdrbl": "blocked",
            "ipbl0001": "blocked",
            "ipbl0010": "blocked",
            "ipbl0011": "blocked",
            "ipbl0100": "blocked",
            "ipbl0101": "blocked",
            "ipbl0110": "blocked",
            "ipbl0111": "blocked",
            "ipbl1000": "blocked",
        },
        COX_ERROR_CODES,
    ),
    Vendor(
        "Google Groups",
        ("groups.google.com/support",),
        {},
        GOOGLE_GROUPS,
        default="rejected",
    ),
    Vendor(
        "Yahoo",
        ("yahoodns.net", "yahoo.com", "yahoo.net", "aol.com", "yahooinc.com"),
        {
            "tss04": "badreputation",  # deferred: unexpected volume or user complaints
            "tss09": "blocked",  # all messages from the IP will be permanently deferred
        },
        YAHOO_SMTP,
    ),
)
