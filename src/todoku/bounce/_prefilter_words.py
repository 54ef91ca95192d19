"""The prefilter's words of the known patterns, by (pattern text, flags): written by
``python -m todoku.bounce.prefilter`` (prefilter.py says why). Do not edit; a
pattern missing here or changed since has its words derived when first used."""

# fmt: off
WORDS = {
    ('gr[ae]y[ -]?list', 32):
        (('list',),),
    ('block ?list|black ?listed by|dnsbl|\\brbl\\b|spamhaus|spamcop|blocked using|banned sending|ip .{0,20}(is |was )?(listed|banned)|blocked for abuse|^\\d{3}[ -]blocked\\b|bloquee|refused to talk to me|aup#cdrbl|which is an open relay|helo command rejected|invalid helo|bad helo', 32):
        (('which is an open relay', 'helo command rejected', 'refused to talk to me', 'invalid helo', 'bad helo', 'spamhaus', 'bloquee', 'spamcop', 'banned', 'listed', 'block', 'dnsbl', 'rbl'),),
    ("type '(a|aaaa)' lookup of \\S+ responded with code noerror", 32):
        ((' responded with code noerror',), ("' lookup of ",), ("type '",)),
    ("responded with code noerror|null mx|does not accept (any )?mail|accepts no mail|(mx|srv) record indicated no smtp service|not accepting network messages|couldn't find a mail exchanger|no mx found", 32):
        ((' record indicated no smtp service', "couldn't find a mail exchanger", 'not accepting network messages', 'responded with code noerror', 'does not accept ', 'accepts no mail', 'no mx found', 'null mx'),),
    ('hop count exceeded|routing loop|mail loop|loops? back to myself|too many (hops|received headers)|dns query failed|host not found, try again|malformed or unexpected name server reply|network error on destination|responded with code (nxdomain|servfail)|host name lookup failure', 32):
        (('malformed or unexpected name server reply', 'network error on destination', 'host not found, try again', 'host name lookup failure', 'responded with code ', 'hop count exceeded', 'dns query failed', ' back to myself', 'routing loop', 'mail loop', 'too many '),),
    ('mailer error|procmail|mailer \\S+ died|command (died|failed)|exited with|deliver(y)? to (a )?(pipe|program)|pipe to \\|', 32):
        (('exited with', 'pipe to |', 'command ', 'procmail', 'deliver', 'mailer '),),
    ('^\\d{1,3}$', 32):
        None,
    ("from a different address or alias|'send mail as'", 32):
        (('from a different address or alias', "'send mail as'"),),
    ('insufficient (disk|system) (space|storage)|(disk|queue|system) (is )?full', 32):
        (('insufficient ', 'full'),),
    ('internal (system |server )?error|unable to contact ldap|system error|local (configuration|error)|misconfigur|config(uration)? error', 32):
        (('unable to contact ldap', 'system error', 'internal ', 'config', 'local '),),
    ('reverse (dns|lookup|hostname)|\\bptr\\b|cannot find your (hostname|reverse)|client host rejected: cannot find|ip name lookup failed|rdns|mismatches client ip|unverifi?(y|i)able sending ips?|hostname.{0,20}does not resolve|no reverse', 32):
        (('client host rejected: cannot find', 'ip name lookup failed', 'mismatches client ip', 'cannot find your ', 'does not resolve', 'able sending ip', 'no reverse', 'reverse ', 'rdns', 'ptr'),),
    ('reputation|likely suspicious|unexpected volume or user complaints', 32):
        (('unexpected volume or user complaints', 'likely suspicious', 'reputation'),),
    ('too many recipients this hour|receiving mail at a rate that prevents|receiving mail too quickly|sending (too fast|rate)|too many messages (in|per)|hourly (limit|quota)|unusual rate of', 32):
        (('receiving mail at a rate that prevents', 'too many recipients this hour', 'receiving mail too quickly', 'too many messages ', 'unusual rate of', 'sending ', 'hourly '),),
    ('too many (connections|concurrent|sessions|simultaneous)|connection (frequency|rate|limit)|rate limit|throttl|try again later.{0,20}rate|frequency limited|too many recipients', 32):
        (('frequency limited', 'try again later', 'connection ', 'rate limit', 'too many ', 'throttl'),),
    ('not (rfc ?5322|rfc ?2822|rfc) compliant|multiple .{0,20}addresses in from|duplicate header|multiple (subject|from|date|to|message-id) |missing (a )?(required )?(date|from|message-id) header', 32):
        (('addresses in from', 'duplicate header', ' compliant', 'multiple ', 'missing '),),
    ('(rejected|refused|blocked) (due to|because of|as) spam|spam classification', 32):
        (('spam classification', 'rejected', 'blocked', 'refused'),),
    ('\\bspf\\b|\\bdmarc\\b|\\bdkim\\b.{0,40}(fail|invalid|not|signature)|sender policy framework|authentication (information|checks?)|not (designated|authori[sz]ed) (to send|permitted sender)|unauthenticated email', 32):
        (('sender policy framework', 'unauthenticated email', 'authentication ', 'designated', 'authori', 'dmarc', 'dkim', 'spf'),),
    ('\\bvirus|malware|infected|\\bmalicious\\b', 32):
        (('malicious', 'infected', 'malware', 'virus'),),
    ('media error|malformed (mime|header)|invalid mime|8-?bit (data|characters) not (allowed|accepted)|8-?bit data in (the )?(message )?header|improper use of 8-?bit', 32):
        (('improper use of 8', 'bit data in ', 'invalid mime', 'media error', 'malformed ', 'ccepted', 'llowed'),),
    ('policy violation|content presents a potential|(attachment|file type|extension).{0,30}(not allowed|prohibited|blocked|rejected)|prohibited (attachment|content)|header error|does not allow external forwarding', 32):
        (('does not allow external forwarding', 'content presents a potential', 'policy violation', 'header error', 'prohibited ', 'attachment', 'extension', 'file type'),),
    ('\\bspam\\b(?!ming)|junk mail|bulk mail|unsolicited|spamassassin|message content rejected|looks like spam|\\buce\\b|blacklisted url|uribl|\\bofr_506\\b|迷惑メール(と|として)(判定|判断)', 32):
        (('message content rejected', 'blacklisted url', 'unsolicited', 'bulk mail', 'junk mail', 'ofr_506', 'uribl', '迷惑メール', 'spam', 'uce'),),
    ('exceeds (the )?(administrative|per.recipient) limit|length exceeds (administrative )?limit|recipsizelimit|too large for this recipient|limit set by recipient', 32):
        (('length exceeds ', 'administrative', 'recipsizelimit', 'recipient'),),
    ('message (size|length) exceeds|message (is |was )?too (big|large)|exceeds (the )?(maximum|fixed) (allowed )?(message )?size|size limit|message file too big|mail size|size exceeds|line limit exceeded|too big', 32):
        (('line limit exceeded', 'size exceeds', 'size limit', 'mail size', 'exceeds ', 'message ', 'too big'),),
    ('(mailbox|mail ?box|inbox|mail folder|user|account|recipient).{0,30}(\\bfull\\b|quota|over (the )?limit|exceeds (allowed|the) size)|quota exceeded|over ?quota|exceeded (the |their )?(storage|quota)|(mailbox|inbox) is over its (storage )?limit|storage limit|insufficient space|out of (storage|space)|not enough (storage|space)|mailbox exceed|(メールボックス|メール容量|容量|ボックス).{0,12}(一杯|いっぱい|満杯|超過|オーバー|不足)', 32):
        (('insufficient space', 'mailbox exceed', 'storage limit', 'not enough ', 'exceeded ', 'exceeds ', 'out of ', 'over ', 'quota', 'full', 'ボックス', '容量'),),
    ('authentication (is )?required|must (be )?authenticat|relay through this server without|auth(entication)? credentials invalid|login failed|smtp auth|delivery not authori[sz]ed', 32):
        (('relay through this server without', ' credentials invalid', 'delivery not authori', 'login failed', 'authenticat', 'smtp auth'),),
    ('sender (address )?(rejected|denied|refused|not allowed|unknown|invalid)|(domain|address) of sender|sender domain|not owned by user|unroutable sender|sender.{0,20}(verify|verification) failed|invalid sender|from: domain is invalid|purported responsible address|sending to/from an address|mail rejected by destination domain|permission to post|\\bgoogle groups(?![a-z])|from a different address or alias|not a member of|投稿する権限|sender was rejected', 32):
        (('mail rejected by destination domain', 'from a different address or alias', 'purported responsible address', 'sending to/from an address', 'from: domain is invalid', 'permission to post', 'not owned by user', 'unroutable sender', 'not a member of', 'invalid sender', 'google groups', ' of sender', ' failed', 'sender ', '投稿する権限'),),
    ('has moved|no longer (at|with)|address (has )?changed|moved to|not our (user|customer)|user not local', 32):
        (('user not local', 'no longer ', 'has moved', 'address ', 'moved to', 'not our '),),
    ('(account|mailbox|user|address)\\S*.{0,40}(suspended|disabled|inactive|deactivated|expired|(temporary|temporarily )?locked|frozen)|is (currently )?(suspended|disabled|inactive)|not active', 32):
        (('deactivated', 'not active', 'suspended', 'disabled', 'inactive', 'expired', 'frozen', 'locked'),),
    ('relay(ing)? (access )?(denied|not permitted|prohibited|not allowed)|no relaying|not permitted to relay|unable to relay|we do not relay|cannot relay|not (a )?(local|our) (domain|host)|not configured to relay|insecure mail relay|email address is not verified', 32):
        (('insecure mail relay', 'unable to relay', 'no relaying', 'prohibited', 'denied', 'not '),),
    ('host(name)? (or domain name )?(not found|unknown)|unknown host|domain (not found|does not exist|unknown|is not reachable)|name or service not known|nxdomain|no such (domain|host)|unrouteable (mail )?(domain|address)|unknown domain|bad destination system|account or domain may not exist|^\\d{3} \\S+\\.\\S+ does not exist|mx records point to non-existent hosts|no mx record|dns lookup fail', 32):
        (('mx records point to non-existent hosts', 'name or service not known', 'bad destination system', ' does not exist', 'dns lookup fail', 'no mx record', 'unrouteable ', 'not found', 'no such ', 'nxdomain', 'domain ', 'unknown'),),
    ("user ?unknown|unknown (user|recipient|local.?part|mailbox|address)|no such (user|mailbox|recipient|address|account|person)|(user|mailbox|recipient|address|account|userid)\\S*.{0,40}(does not exist|doesn't exist|not exist|not found|wasn.t found|is unknown|invalid|not valid)|invalid (recipient|mailbox|address|user|final delivery)|not a valid (recipient|mailbox|user)|no mailbox|mailbox unavailable|doesn't have an? \\S+ account|unknown or illegal alias|no valid recipients|address rejected|unable to deliver message to|bad destination mailbox|not listed in (the )?(domino directory|public name|address book)|address (you entered )?(couldn.t|could not|can.t|cannot) be found|destinataire invalide|(宛先|アドレス|ユーザ|アカウント).{0,12}(存在しません|存在しない|見つかりません|不明)|存在しない(メール)?(アドレス|ユーザ|宛先)", 32):
        (('unable to deliver message to', 'bad destination mailbox', 'mailbox unavailable', 'no valid recipients', 'address rejected', "doesn't have a", 'not listed in ', "doesn't exist", 'not a valid ', 'no mailbox', ' be found', 'not exist', 'not valid', 'no such ', 'invalid', 't found', 'unknown', 'アカウント', '存在しない', 'アドレス', 'ユーザ', '宛先'),),
    ('retry time(out)? exceeded|could not be delivered (with)?in|message expired|delivery time expired|too long in queue|queue lifetime|envelope expired|gave up|giving up|have been failing for a long|will be retried|did not accept our requests to connect|(connection|operation) timed out|timed out while (receiving|sending)|unable to connect|establish an smtp connection|timeout waiting|could not be delivered for|not been delivered .{0,30}(hours|days)|host not reachable|not delivered within|aborted after [\\d.]+ ?(hour|day)|cannot send message (for|within)|in the queue too long|failed (after )?\\d+ (delivery )?attempts|retry time not reached for any host after a long', 32):
        (('did not accept our requests to connect', 'establish an smtp connection', 'have been failing for a long', 'could not be delivered ', 'delivery time expired', 'in the queue too long', 'cannot send message ', 'not delivered within', 'not been delivered ', 'host not reachable', 'too long in queue', 'unable to connect', 'envelope expired', 'timed out while ', 'message expired', 'timeout waiting', 'will be retried', 'aborted after ', 'queue lifetime', ' timed out', 'retry time', 'giving up', 'attempts', 'gave up'),),
    ("(client|sender'?s?|your|source) ?(ip|host|address).{0,40}(blocked|rejected|listed|banned|denied)|blocked (by|for)|spamming|smtp server of your isp|not accepting connections|invalid ip for sending|service refuse|relay quota|messages from \\S+ weren't sent|connection (rejected|denied)|all messages from \\S+ will be permanently deferred|traffic not accepted from this ip|not in whitelist", 32):
        (('traffic not accepted from this ip', ' will be permanently deferred', 'not accepting connections', 'smtp server of your isp', 'invalid ip for sending', 'not in whitelist', 'messages from ', 'service refuse', 'connection ', 'relay quota', 'rejected', 'spamming', 'blocked', 'banned', 'denied', 'listed'),),
    ('(connection|network).{0,20}(reset|lost)|dns (error|failure|lookup)|lookup failed|no route to host', 32):
        (('no route to host', 'connection', 'failure', 'network', 'lookup', 'error'),),
    ('malformed address|syntax error|command not recognized', 32):
        (('command not recognized', 'malformed address', 'syntax error'),),
    ('message filtered|domain.filter|rejected by a remote mail server|recipient(.s)? preferences|受信拒否', 32):
        (('rejected by a remote mail server', 'message filtered', ' preferences', 'domain', '受信拒否'),),
    ('(due to|because of) an? recipient error', 32):
        ((' recipient error',), ('because of', 'due to')),
    ('service (is )?(currently |temporarily )?unavailable', 32):
        (('unavailable',), ('service ',)),
    ('\\bpolicy\\b|prohibited|not allowed', 32):
        (('not allowed', 'prohibited', 'policy'),),
    ('(?<!access )\\bdenied\\b', 32):
        (('denied',),),
    ('\\bblocked\\b|^\\d{3}[ -]rejected$', 32):
        (('rejected', 'blocked'),),
    ('(?:in reply to|after|progress was|smtp command:?|>>>)\\s*(?:the\\s+)?(rcpt\\b|mail\\b|end of data|end of message|data\\b|helo|ehlo|initial connection|connect)', 32):
        (('end of message', 'connect', 'data', 'ehlo', 'helo', 'mail', 'rcpt'), ('progress was', 'smtp command', 'in reply to', 'after', '>>>')),
}
