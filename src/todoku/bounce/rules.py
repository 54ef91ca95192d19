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
    # A canned wording that many causes share ("Service unavailable", "Access denied", "policy"):
    # a specific sentence elsewhere in the report outranks it.
    weak: bool = False


def _rule(reason: str, regex: str, phase: str = ANY, source: str = "", weak: bool = False) -> Rule:
    """Patterns are written in lower case and matched against lower-cased text: the same result
    as re.IGNORECASE, several times faster (the regex engine can use literal prefixes)."""
    if re.search(r"(?<!\\)[A-Z]", regex):
        raise ValueError(f"rule {reason!r}: write the pattern in lower case: {regex}")
    return Rule(reason, re.compile(regex), phase, source, weak)


TEXT_RULES: tuple[Rule, ...] = (
    # Greylisting (RFC 6647 §2.1): the receiver turns away a client it has not seen with this
    # sender and recipient yet, asking it to come back later. It is about the sending client, so
    # blocked (never securityerror, which its usual 451 4.7.1 code would give); the queue
    # recognises the same words itself (queue.runner.is_greylisting) to retry soon.
    _rule("blocked", r"gr[ae]y[ -]?list", source="RFC 6647; Postgrey 'Greylisted, see "
          "http://postgrey...', '451 4.7.1 Greylisted, please try again later'"),
    # --- the mail system as a whole: loops, DNS, null MX, local programs ------------------------
    _rule("blocked", r"block ?list|black ?listed by|dnsbl|\brbl\b|spamhaus|spamcop|"
          r"blocked using|banned sending|ip .{0,20}(is |was )?(listed|banned)|blocked for abuse|"
          r"^\d{3}[ -]blocked\b|bloquee|refused to talk to me|aup#cdrbl|which is an open relay|"
          r"helo command rejected|invalid helo|bad helo",
          source="Postfix reject_rbl_client 'blocked using', Postfix 'refused to talk to me', "
          "Spamhaus/SORBS listings, Microsoft 5.7.606 'banned sending IP', Proofpoint, Orange, "
          "Cox 'AUP#CDRBL' (its error-code table: the sending IP is on Cox's blocklist, whatever "
          "the 'sender rejected' before it says), open-relay lists 'no access from mail server "
          "[ip] which is an open relay', Postfix smtpd_helo_restrictions '504 5.5.2 <x>: Helo "
          "command rejected: need fully-qualified hostname' (the client's HELO name: 'Host not "
          "found' after it is about the client, not the recipient's domain)"),
    # Gmail falls back to the A/AAAA records when a domain has no MX (RFC 5321 §5.1 implicit MX);
    # when those lookups come back empty too, the domain has no mail host in DNS at all: a DNS
    # problem at the destination, whereas an MX lookup alone answering NOERROR without records
    # (the next rule) is a domain that publishes no mail service.
    _rule("networkerror", r"type '(a|aaaa)' lookup of \S+ responded with code noerror",
          source="Gmail 'DNS type 'a' lookup of X responded with code NOERROR'"),
    _rule("notaccept", r"responded with code noerror|null mx|does not accept (any )?mail|"
          r"accepts no mail|(mx|srv) record indicated no smtp service|"
          r"not accepting network messages|couldn't find a mail exchanger|no mx found",
          source="RFC 7505 §3 (556 5.1.10), RFC 3463 X.3.2, qmail 'couldn't find a mail "
          "exchanger or IP address', Exim 'no SMTP service', Gmail 'responded with code NOERROR'"),
    _rule("networkerror", r"hop count exceeded|routing loop|mail loop|loops? back to myself|"
          r"too many (hops|received headers)|dns query failed|host not found, try again|"
          r"malformed or unexpected name server reply|network error on destination|"
          r"responded with code (nxdomain|servfail)|host name lookup failure",
          source="Postfix 'mail for X loops back to myself', Exim 'Too many Received headers', "
          "Domino 'Maximum hop count', Gmail 'DNS Error ... NXDOMAIN', RFC 5321 §6.3, sendmail "
          "'Deferred: Name server: X: host name lookup failure' (the cause behind a give-up)"),
    _rule("mailererror", r"mailer error|procmail|mailer \S+ died|command (died|failed)|"
          r"exited with|deliver(y)? to (a )?(pipe|program)|pipe to \||^\d{1,3}$",
          source="sendmail 'mailer prog died with signal', Exim pipe transport, Diagnostic-Code "
          "x-unix (a bare exit status)"),
    # Gmail's "Send mail as" refusal calls the alias settings "misconfigured": the sender is the
    # subject, so this comes before systemerror's "misconfigur".
    _rule("rejected", r"from a different address or alias|'send mail as'",
          source="Gmail/Google Workspace 'You're sending this from a different address or alias "
          "using the 'Send mail as' feature'"),
    _rule("systemfull", r"insufficient (disk|system) (space|storage)|(disk|queue|system) (is )?full",
          source="RFC 3463 X.3.1/X.4.5, sendmail 452 4.4.5 'Insufficient disk space'"),
    _rule("systemerror", r"internal (system |server )?error|unable to contact ldap|"
          r"system error|"
          r"local (configuration|error)|misconfigur|config(uration)? error",
          source="RFC 3463 X.3.0/X.3.5, qmail 'Unable to contact LDAP server', RFC 5321 421"),
    # --- the sending client: reverse DNS, reputation, rate -----------------------------------------
    _rule("requireptr", r"reverse (dns|lookup|hostname)|\bptr\b|cannot find your (hostname|reverse)|"
          r"client host rejected: cannot find|ip name lookup failed|rdns|"
          r"mismatches client ip|unverifi?(y|i)able sending ips?|"
          r"hostname.{0,20}does not resolve|no reverse", source="Postfix "
          "reject_unknown_client_hostname 450 4.7.1, Google 5.7.25, Outlook 'mismatches client ip'"),
    # Yahoo's TSS04 defers an IP for "unexpected volume or user complaints": its own
    # postmaster pages file it under the sending IP's reputation (complaint rate), not a rate
    # limit or the sender address.
    _rule("badreputation", r"reputation|likely suspicious|unexpected volume or user complaints",
          source="Microsoft 4.7.650 'rate limited due to IP reputation', Gmail 5.7.1 'very low "
          "reputation', Yahoo 421 4.7.0 [TSS04] 'temporarily deferred due to unexpected volume "
          "or user complaints'"),
    _rule("speeding", r"too many recipients this hour|sending (too fast|rate)|"
          r"too many messages (in|per)|hourly (limit|quota)|unusual rate of",
          source="GoDaddy IB607, Yahoo, Gmail 421 4.7.28 'Our system has detected an unusual "
          "rate of unsolicited mail originating from your IP address' (a volume limit per "
          "sending IP: it says spam, but what it enforces is a rate)"),
    _rule("toomanyconn", r"too many (connections|concurrent|sessions|simultaneous)|"
          r"connection (frequency|rate|limit)|rate limit|throttl|try again later.{0,20}rate|"
          r"too many recipients", source="Postfix anvil 421 4.7.0 'Too many connections', "
          "Tencent 'Connection frequency limited', RFC 5321 452 too many recipients"),
    # --- the message's form and content ---------------------------------------------------------------
    _rule("notcompliantrfc", r"not (rfc ?5322|rfc ?2822|rfc) compliant|"
          r"multiple .{0,20}addresses in from|duplicate header|"
          r"multiple (subject|from|date|to|message-id) |"
          r"missing (a )?(required )?(date|from|message-id) header",
          source="Gmail 550 5.7.1 'not RFC 5322 compliant', SES 'Duplicate header'"),
    # Google Groups refuses spam and then advises on SPF: the verdict is the spam one.
    _rule("spamdetected", r"(rejected|refused|blocked) (due to|because of|as) spam|"
          r"spam classification", source="Google Groups 'Your email to group X was rejected "
          "due to spam classification'"),
    _rule("authfailure", r"\bspf\b|\bdmarc\b|\bdkim\b.{0,40}(fail|invalid|not|signature)|"
          r"sender policy framework|authentication (information|checks?)|"
          r"not (designated|authori[sz]ed) (to send|permitted sender)|unauthenticated email",
          source="RFC 7208 §8.4 (550 5.7.23), RFC 7489 §7.3, Google 5.7.26, Microsoft 5.7.509"),
    _rule("virusdetected", r"\bvirus|malware|infected|\bmalicious\b",
          source="ClamAV/Amavis and hosted filters"),
    _rule("contenterror", r"media error|malformed (mime|header)|invalid mime|"
          r"8-?bit (data|characters) not (allowed|accepted)", source="RFC 3463 X.6.x"),
    _rule("policyviolation", r"policy violation|content presents a potential|"
          r"(attachment|file type|extension).{0,30}(not allowed|prohibited|blocked|rejected)|"
          r"prohibited (attachment|content)|header error|does not allow external forwarding",
          source="Gmail 552 5.7.0 'content presents a potential security issue', X.7.x policy, Microsoft "
          "550 5.7.520 'Your organization does not allow external forwarding'"),
    _rule("spamdetected", r"\bspam\b(?!ming)|junk mail|bulk mail|unsolicited|spamassassin|"
          r"message content rejected|looks like spam|\buce\b|blacklisted url|uribl|\bofr_506\b|"
          r"迷惑メール(と|として)(判定|判断)",
          source="SpamAssassin, Gmail 5.7.1 'likely unsolicited', URIBL lookups, Orange "
          "'Mail rejete. Mail rejected. ofr_506' (its code for a message judged to be spam)"),
    # --- size and limits ----------------------------------------------------------------------------------
    _rule("exceedlimit", r"exceeds (the )?(administrative|per.recipient) limit|"
          r"length exceeds (administrative )?limit|recipsizelimit|too large for this recipient|"
          r"limit set by recipient", source="RFC 3463 X.2.3, Exchange RESOLVER.RST.RecipSizeLimit"),
    _rule("mesgtoobig", r"message (size|length) exceeds|message (is |was )?too (big|large)|"
          r"exceeds (the )?(maximum|fixed) (allowed )?(message )?size|size limit|"
          r"message file too big|mail size|size exceeds|line limit exceeded|too big",
          source="RFC 1870 §6 552 5.3.4; Postfix, Exim, sendmail"),
    _rule("mailboxfull", r"(mailbox|mail ?box|inbox|mail folder|user|account|recipient)"
          r".{0,30}(\bfull\b|quota|over (the )?limit|exceeds (allowed|the) size)|"
          r"quota exceeded|over ?quota|exceeded (the |their )?(storage|quota)|"
          r"(mailbox|inbox) is over its (storage )?limit|storage limit|"
          r"insufficient space|out of (storage|space)|not enough (storage|space)|"
          r"mailbox exceed|(メールボックス|メール容量|容量|ボックス).{0,12}(一杯|いっぱい|満杯|超過|オーバー|不足)",
          source="RFC 3463 X.2.2; Postfix virtual 'Mailbox full', Gmail 'OverQuotaTemp', "
          "Japanese carriers' notices (メールボックスが一杯, 容量超過)"),
    # --- the sender: authentication, address ------------------------------------------------------------
    _rule("securityerror", r"authentication (is )?required|must (be )?authenticat|"
          r"relay through this server without|auth(entication)? credentials invalid|"
          r"login failed|smtp auth|delivery not authori[sz]ed",
          source="RFC 4954 §6 530 5.7.0 / 535 5.7.8, MessageLabs, Yahoo/Postfix 'Delivery not "
          "authorized, message refused'"),
    _rule("rejected", r"sender (address )?(rejected|denied|refused|not allowed|unknown|invalid)|"
          r"(domain|address) of sender|sender domain|not owned by user|unroutable sender|"
          r"sender.{0,20}(verify|verification) failed|invalid sender|from: domain is invalid|"
          r"purported responsible address|sending to/from an address|"
          r"mail rejected by destination domain|permission to post|\bgoogle groups(?![a-z])|"
          r"from a different address or alias|not a member of|投稿する権限|"
          r"sender was rejected",
          source="Postfix 553 5.7.1 'Sender address rejected: not owned by user', "
          "reject_unknown_sender_domain, Exim 'Unroutable sender address', Google Groups, "
          "Yahoo TSS04, mailing-list managers 'not a member', qmail 'Connected to X but sender was "
          "rejected'"),
    # --- the recipient ------------------------------------------------------------------------------------------
    _rule("hasmoved", r"has moved|no longer (at|with)|address (has )?changed|moved to|"
          r"not our (user|customer)|user not local",
          source="RFC 5321 §3.4 551 User not local; please try <forward-path>"),
    _rule("suspend", r"(account|mailbox|user|address)\S*.{0,40}(suspended|disabled|inactive|"
          r"deactivated|expired|(temporary|temporarily )?locked|frozen)|"
          r"is (currently )?(suspended|disabled|inactive)|not active",
          source="Gmail 'account ... disabled', Yahoo 'inactive', RFC 3463 X.2.1"),
    _rule("hostunknown", r"host(name)? (or domain name )?(not found|unknown)|unknown host|"
          r"domain (not found|does not exist|unknown|is not reachable)|"
          r"name or service not known|nxdomain|no such (domain|host)|"
          r"unrouteable (mail )?(domain|address)|unknown domain|bad destination system|"
          r"account or domain may not exist|^\d{3} \S+\.\S+ does not exist|"
          r"mx records point to non-existent hosts",
          source="Postfix 'Host or domain name not found', Exim 'Unrouteable address', "
          "RFC 3463 X.1.2, Outlook 'domain is not reachable'"),
    _rule("userunknown", r"user ?unknown|unknown (user|recipient|local.?part|mailbox|address)|"
          r"no such (user|mailbox|recipient|address|account|person)|"
          r"(user|mailbox|recipient|address|account|userid)\S*.{0,40}(does not exist|doesn't "
          r"exist|not exist|not found|wasn.t found|is unknown|invalid|not valid)|"
          r"invalid (recipient|mailbox|address|user|final delivery)|"
          r"not a valid (recipient|mailbox|user)|no mailbox|mailbox unavailable|"
          r"doesn't have an? \S+ account|unknown or illegal alias|no valid recipients|"
          r"address rejected|unable to deliver message to|bad destination mailbox|"
          r"not listed in (the )?(domino directory|public name|address book)|"
          r"address (you entered )?(couldn.t|could not|can.t|cannot) be found|destinataire invalide|"
          r"(宛先|アドレス|ユーザ|アカウント).{0,12}(存在しません|存在しない|見つかりません|不明)|"
          r"存在しない(メール)?(アドレス|ユーザ|宛先)",
          source="Postfix 'User unknown in local recipient table', sendmail '... User unknown', "
          "Gmail 5.1.1, Exchange RESOLVER.ADR.RecipNotFound, Yahoo 'doesn't have a ... account', "
          "Domino 'not listed in Domino Directory', Orange 'destinataire invalide', Japanese "
          "carriers' notices (宛先が存在しません)"),
    _rule("norelaying", r"relay(ing)? (access )?(denied|not permitted|prohibited|not allowed)|"
          r"not permitted to relay|unable to relay|we do not relay|cannot relay|"
          r"not (a )?(local|our) (domain|host)|not configured to relay|insecure mail relay|"
          r"email address is not verified",
          source="Postfix 554 5.7.1 'Relay access denied', sendmail 550 5.7.1 'Relaying denied', "
          "older sendmail anti-relay rulesets '550 Insecure Mail Relay', "
          "'This system is not configured to relay mail', Amazon SES SMTP 554 'Message rejected: "
          "Email address is not verified' (it relays only for identities verified with it)"),
    # --- gave up, or could not connect ------------------------------------------------------------------
    _rule("expired", r"retry time(out)? exceeded|could not be delivered (with)?in|"
          r"message expired|delivery time expired|too long in queue|queue lifetime|envelope expired|"
          r"gave up|giving up|have been failing for a long|will be retried|"
          r"did not accept our requests to connect|(connection|operation) timed out|"
          r"timed out while (receiving|sending)|"
          r"unable to connect|establish an smtp connection|timeout waiting|"
          r"could not be delivered for|not been delivered .{0,30}(hours|days)|host not reachable|"
          r"not delivered within|aborted after [\d.]+ ?(hour|day)|cannot send message (for|within)|"
          r"in the queue too long|retry time not reached for any host after a long",
          source="Exim 'retry timeout exceeded', sendmail 'Cannot send message for 5 days', "
          "Gmail 'Message will be retried', Postfix 'Connection timed out', OpenSMTPD, sendmail "
          "'Cannot send message for 5 days', qmail 'this message has been in the queue too long', "
          "Exim 'retry time not reached for any host after a long failure period', Postfix "
          "'conversation with X timed out while receiving the initial server greeting'"),
    _rule("blocked", r"(client|sender'?s?|your|source) ?(ip|host|address).{0,40}(blocked|rejected|"
          r"listed|banned|denied)|blocked (by|for)|spamming|smtp server of your isp|"
          r"not accepting connections|invalid ip for sending|service refuse|relay quota|"
          r"messages from \S+ weren't sent|connection (refused|rejected|denied)|"
          r"all messages from \S+ will be permanently deferred|traffic not accepted from this ip",
          source="Postfix 'Client host rejected', Microsoft S3140, Orange 'Service refuse', "
          "Exim relay quota, Yahoo 553 5.7.2 [TSS09] 'All messages from [ip] will be permanently "
          "deferred', Microsoft 550 5.7.708 'traffic not accepted from this IP'"),
    _rule("networkerror", r"(connection|network).{0,20}(reset|lost)|dns (error|failure|lookup)|"
          r"lookup failed|no route to host", source="RFC 5321 §6.3, Postfix"),
    _rule("syntaxerror", r"malformed address|syntax error|command not recognized",
          source="RFC 5321 §4.2.2 500/501, Exim 'malformed address'"),
    _rule("filtered", r"message filtered|domain.filter|rejected by a remote mail server|"
          r"recipient(.s)? preferences|受信拒否",
          source="SES 'Message Filtered', EZweb domain filter, Facebook RCP-P2 'Refused due to "
          "recipient preferences', Japanese carriers' '受信拒否' (the recipient's own "
          "refusal settings: docomo, au, SoftBank)"),
    # The server blames the recipient but names nothing: neither a system error (what its 451
    # 4.3.0 would say) nor any known cause, so the reason is undecided.
    _rule("onhold", r"(due to|because of) an? recipient error",
          source="Firefox Relay '451 4.3.0 This message could not be delivered due to a "
          "recipient error. Please try again later.'"),
    # --- last resort: the generic words -------------------------------------------------------------------------
    # sendmail answers "554 <a>... Service unavailable" for whatever made its delivery agent fail
    # (the transcript above it says what: "mail.local: unknown user"); RFC 5321 421 wording.
    _rule("systemerror", r"service (is )?(currently |temporarily )?unavailable",
          source="RFC 5321 §4.2.3 421, sendmail 554 'Service unavailable'", weak=True),
    _rule("policyviolation", r"\bpolicy\b|prohibited|not allowed", source="generic X.7.x wording",
          weak=True),
    # A bare "Access denied" (sendmail's access map, "550 5.7.1 <a>... Access denied") says only
    # that something was refused: the enhanced code (X.7.1: not authorised) or the SMTP command
    # it answered decides, so it is left out here.
    _rule("rejected", r"(?<!access )\bdenied\b", source="generic 'denied'", weak=True),
    _rule("blocked", r"\bblocked\b|^\d{3}[ -]rejected$", source="generic", weak=True),
)

# Enhanced status codes specific enough to outrank the wording (RFC 3463 §3.1: the detail names one
# cause). Vague ones (X.0.0, X.1.0, X.2.0, X.7.0, X.7.1 ...) do not appear here.
DECISIVE_STATUS: dict[str, str] = {
    "1.7": "rejected",
    "1.8": "rejected",
    "2.3": "exceedlimit",
    "7.20": "authfailure", "7.21": "authfailure", "7.22": "authfailure", "7.23": "authfailure",
    "7.24": "authfailure", "7.25": "requireptr", "7.26": "authfailure", "7.27": "notaccept",
    "7.28": "speeding",
}

# RFC 3463 §3: enhanced status code → reason, most specific first (X.Y.Z before X.Y).
STATUS_RULES: dict[str, str] = {
    "1.0": "userunknown",     # RFC 3463 X.1.0 other address status (servers use it for RCPT)
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
    "2.3": "exceedlimit",     # X.2.3 message length exceeds administrative limit
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
    "7.1": "securityerror",   # X.7.1 delivery not authorized, message refused
    "7.2": "policyviolation", # X.7.2 mailing list expansion prohibited
    "7.4": "securityerror",   # X.7.4 security features not supported
    "7.5": "securityerror",   # X.7.5 cryptographic failure
    "7.6": "securityerror",   # X.7.6 cryptographic algorithm not supported
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
    "7.28": "speeding",       # IANA registry X.7.28 mail flood detected (Gmail 421 4.7.28)
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


# Bounces written by content-filtering gateways and anti-spam appliances, recognised by the
# headers their products stamp on the bounce itself (X-Mailer, a vendor header, the daemon's
# domain). Such a gateway accepts the recipient first and relays the message inward; when the
# inner server then refuses the mailbox, the refusal reaches us after the content was taken, so a
# "user unknown" in their report is the gateway's filtering of that recipient, not a reply to
# RCPT TO. The patterns are matched against "Header-Name: value" lines, lower-cased.
FILTER_GATEWAY = re.compile(
    r"^x-nai-header: .*mcafee"            # McAfee Email and Web Security appliances
    r"|^x-mailer: .*surfcontrol"          # SurfControl E-mail Filter
    r"|^from: .*@[\w.-]*mxlogic\.net"     # MXLogic (McAfee SaaS) filtering service
    r"|^x-ahmailid: ",                    # Activehunter anti-spam gateway
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

# sendmail session transcripts: ">>> COMMAND" sent, "<<< NNN text" the remote's reply.
SENDMAIL_TRANSCRIPT_COMMAND = re.compile(r"^>>> [^\n]*", re.MULTILINE)
SENDMAIL_TRANSCRIPT_REPLY = re.compile(r"^<<< ([245]\d\d[ -][^\n]*)", re.MULTILINE)

# A reporting MTA's own sentence that the recipient's account exists but is switched off (EZweb:
# "The user(s) account is disabled."), which outranks the remote's bare "550 user unknown".
ACCOUNT_DISABLED_NOTICE = re.compile(r"^the user\(s\) account is (disabled|suspended)|"
                                     r"^this account has been (disabled|suspended)", re.MULTILINE)

# The reporting MTA says it has no report to give (Postfix's bounce daemon writes this line when
# the delivery log for the message is missing): nothing is known, not even vaguely.
NO_REPORT = re.compile(r"delivery report unavailable")
