"""The prefilter's words of the known patterns, by (pattern text, flags): written by
``python -m todoku.bounce.prefilter`` (prefilter.py says why). Do not edit; a
pattern missing here or changed since has its words derived when first used."""

# fmt: off
WORDS = {
    ('gr[ae]y[ -]?list', 32):
        (('list',),),
    ('black ?listed (url|uri|link|domain in)', 32):
        (('listed ',), ('black',), ('domain in', 'link', 'uri', 'url')),
    ('\\b(uribl|surbl)\\b', 32):
        (('surbl', 'uribl'),),
    ('block ?list', 32):
        (('block',), ('list',)),
    ('(client|source) ?(ip|host).{0,40}(blocked|listed|banned)', 32):
        (('client', 'source'), ('blocked', 'banned', 'listed')),
    ('(ip|host|client|server|you|your)\\b.{0,30}black ?listed|black ?listed (by|at|in|on)\\b', 32):
        (('listed',),),
    ('dnsbl', 32):
        (('dnsbl',),),
    ('\\brbl\\b', 32):
        (('rbl',),),
    ('spamhaus', 32):
        (('spamhaus',),),
    ('spamcop', 32):
        (('spamcop',),),
    ('blocked using', 32):
        (('blocked using',),),
    ('banned sending', 32):
        (('banned sending',),),
    ('ip .{0,20}(is |was )?(listed|banned)', 32):
        (('banned', 'listed'), ('ip ',)),
    ('blocked for abuse', 32):
        (('blocked for abuse',),),
    ('^\\d{3}[ -]blocked\\b', 32):
        (('blocked',),),
    ('bloquee', 32):
        (('bloquee',),),
    ('refused to talk to me', 32):
        (('refused to talk to me',),),
    ('aup#cdrbl', 32):
        (('aup#cdrbl',),),
    ('which is an open relay', 32):
        (('which is an open relay',),),
    ('helo command rejected', 32):
        (('helo command rejected',),),
    ('invalid helo', 32):
        (('invalid helo',),),
    ('bad helo', 32):
        (('bad helo',),),
    ("type '(a|aaaa)' lookup of \\S+ responded with code noerror", 32):
        ((' responded with code noerror',), ("' lookup of ",), ("type '",)),
    ('responded with code noerror', 32):
        (('responded with code noerror',),),
    ('null mx', 32):
        (('null mx',),),
    ('does not accept (any )?mail', 32):
        (('does not accept ',), ('mail',)),
    ('accepts no mail', 32):
        (('accepts no mail',),),
    ('(mx|srv) record indicated no smtp service', 32):
        ((' record indicated no smtp service',),),
    ('not accepting network messages', 32):
        (('not accepting network messages',),),
    ("couldn't find a mail exchanger", 32):
        (("couldn't find a mail exchanger",),),
    ('no mx found', 32):
        (('no mx found',),),
    ('hop count exceeded', 32):
        (('hop count exceeded',),),
    ('routing loop', 32):
        (('routing loop',),),
    ('mail loop', 32):
        (('mail loop',),),
    ('loops? back to myself', 32):
        ((' back to myself',), ('loop',)),
    ('too many (hops|received headers)', 32):
        (('too many ',), ('received headers', 'hops')),
    ('dns query failed', 32):
        (('dns query failed',),),
    ('host not found, try again', 32):
        (('host not found, try again',),),
    ('malformed or unexpected name server reply', 32):
        (('malformed or unexpected name server reply',),),
    ('network error on destination', 32):
        (('network error on destination',),),
    ('responded with code (nxdomain|servfail)', 32):
        (('responded with code ',), ('nxdomain', 'servfail')),
    ('host name lookup failure', 32):
        (('host name lookup failure',),),
    ('mailer error', 32):
        (('mailer error',),),
    ('procmail', 32):
        (('procmail',),),
    ('mailer \\S+ died', 32):
        (('mailer ',), (' died',)),
    ('command (died|failed)', 32):
        (('command ',), ('failed', 'died')),
    ('exited with', 32):
        (('exited with',),),
    ('deliver(y)? to (a )?(pipe|program)', 32):
        (('deliver',), (' to ',), ('rogram', 'ipe')),
    ('pipe to \\|', 32):
        (('pipe to |',),),
    ('^\\d{1,3}$', 32):
        None,
    ('from a different address or alias', 32):
        (('from a different address or alias',),),
    ("'send mail as'", 32):
        (("'send mail as'",),),
    ('insufficient (disk|system) (space|storage)', 32):
        (('insufficient ',), ('system', 'disk'), ('torage', 'pace')),
    ('(disk|queue|system) (is )?full', 32):
        (('full',), ('system', 'queue', 'disk')),
    ('internal (system |server )?error', 32):
        (('internal ',), ('error',)),
    ('unable to contact ldap', 32):
        (('unable to contact ldap',),),
    ('system error', 32):
        (('system error',),),
    ('local (configuration|error)', 32):
        (('local ',), ('configuration', 'error')),
    ('misconfigur', 32):
        (('misconfigur',),),
    ('config(uration)? error', 32):
        (('config',), (' error',)),
    ('reverse (dns|lookup|hostname)', 32):
        (('reverse ',), ('hostname', 'lookup', 'dns')),
    ('\\bptr\\b', 32):
        (('ptr',),),
    ('cannot find your (hostname|reverse)', 32):
        (('cannot find your ',), ('hostname', 'reverse')),
    ('client host rejected: cannot find', 32):
        (('client host rejected: cannot find',),),
    ('ip name lookup failed', 32):
        (('ip name lookup failed',),),
    ('rdns', 32):
        (('rdns',),),
    ('mismatches client ip', 32):
        (('mismatches client ip',),),
    ('unverifi?(y|i)able sending ips?', 32):
        (('able sending ip',), ('unverif',)),
    ('hostname.{0,20}does not resolve', 32):
        (('does not resolve',), ('hostname',)),
    ('no reverse', 32):
        (('no reverse',),),
    ('reputation', 32):
        (('reputation',),),
    ('likely suspicious', 32):
        (('likely suspicious',),),
    ('unexpected volume or user complaints', 32):
        (('unexpected volume or user complaints',),),
    ('too many recipients this hour', 32):
        (('too many recipients this hour',),),
    ('receiving mail at a rate that prevents', 32):
        (('receiving mail at a rate that prevents',),),
    ('receiving mail too quickly', 32):
        (('receiving mail too quickly',),),
    ('sending (too fast|rate)', 32):
        (('sending ',), ('too fast', 'rate')),
    ('too many messages (in|per)', 32):
        (('too many messages ',),),
    ('hourly (limit|quota)', 32):
        (('hourly ',), ('limit', 'quota')),
    ('unusual rate of', 32):
        (('unusual rate of',),),
    ('too many (connections|concurrent|sessions|simultaneous)', 32):
        (('too many ',), ('simultaneous', 'connections', 'concurrent', 'sessions')),
    ('connection (frequency|rate|limit)', 32):
        (('connection ',), ('frequency', 'limit', 'rate')),
    ('rate limit', 32):
        (('rate limit',),),
    ('throttl', 32):
        (('throttl',),),
    ('try again later.{0,20}rate', 32):
        (('try again later',), ('rate',)),
    ('frequency limited', 32):
        (('frequency limited',),),
    ('too many recipients', 32):
        (('too many recipients',),),
    ('not (rfc ?5322|rfc ?2822|rfc) compliant', 32):
        ((' compliant',), ('not ',), ('rfc',)),
    ('multiple .{0,20}addresses in from', 32):
        (('addresses in from',), ('multiple ',)),
    ('duplicate header', 32):
        (('duplicate header',),),
    ('multiple (subject|from|date|to|message-id) ', 32):
        (('multiple ',),),
    ('missing (a )?(required )?(date|from|message-id) header', 32):
        (('missing ',), (' header',), ('message-id', 'date', 'from')),
    ('(rejected|refused|blocked) (due to|because of|as) spam', 32):
        (('rejected', 'blocked', 'refused'), (' spam',)),
    ('spam classification', 32):
        (('spam classification',),),
    ('\\bspf\\b', 32):
        (('spf',),),
    ('\\bdmarc\\b', 32):
        (('dmarc',),),
    ('\\bdkim\\b.{0,40}(fail|invalid|not|signature)', 32):
        (('dkim',), ('signature', 'invalid', 'fail', 'not')),
    ('sender policy framework', 32):
        (('sender policy framework',),),
    ('authentication (information|checks?)', 32):
        (('authentication ',), ('information', 'check')),
    ('not (designated|authori[sz]ed) (to send|permitted sender)', 32):
        (('designated', 'authori'), ('permitted sender', 'to send'), ('not ',)),
    ('unauthenticated email', 32):
        (('unauthenticated email',),),
    ('\\bvirus', 32):
        (('virus',),),
    ('malware', 32):
        (('malware',),),
    ('infected', 32):
        (('infected',),),
    ('\\bmalicious\\b', 32):
        (('malicious',),),
    ('media error', 32):
        (('media error',),),
    ('malformed (mime|header)', 32):
        (('malformed ',), ('header', 'mime')),
    ('invalid mime', 32):
        (('invalid mime',),),
    ('8-?bit (data|characters) not (allowed|accepted)', 32):
        (('ccepted', 'llowed'), (' not ',), ('bit ',)),
    ('8-?bit data in (the )?(message )?header', 32):
        (('bit data in ',), ('header',)),
    ('improper use of 8-?bit', 32):
        (('improper use of 8',), ('bit',)),
    ('policy violation', 32):
        (('policy violation',),),
    ('content presents a potential', 32):
        (('content presents a potential',),),
    ('(attachment|file type|extension).{0,30}(not allowed|prohibited|blocked|rejected)', 32):
        (('attachment', 'extension', 'file type'), ('not allowed', 'prohibited', 'rejected', 'blocked')),
    ('prohibited (attachment|content)', 32):
        (('prohibited ',), ('attachment', 'content')),
    ('header error', 32):
        (('header error',),),
    ('does not allow external forwarding', 32):
        (('does not allow external forwarding',),),
    ('\\bspam\\b(?!ming)', 32):
        (('spam',),),
    ('junk mail', 32):
        (('junk mail',),),
    ('bulk mail', 32):
        (('bulk mail',),),
    ('unsolicited', 32):
        (('unsolicited',),),
    ('spamassassin', 32):
        (('spamassassin',),),
    ('message content rejected', 32):
        (('message content rejected',),),
    ('looks like spam', 32):
        (('looks like spam',),),
    ('\\buce\\b', 32):
        (('uce',),),
    ('\\bofr_506\\b', 32):
        (('ofr_506',),),
    ('迷惑メール(と|として)(判定|判断)', 32):
        (('迷惑メール',),),
    ('exceeds (the )?(administrative|per.recipient) limit', 32):
        (('administrative', 'recipient'), ('exceeds ',), (' limit',)),
    ('length exceeds (administrative )?limit', 32):
        (('length exceeds ',), ('limit',)),
    ('recipsizelimit', 32):
        (('recipsizelimit',),),
    ('too large for this recipient', 32):
        (('too large for this recipient',),),
    ('limit set by recipient', 32):
        (('limit set by recipient',),),
    ('message (size|length) exceeds', 32):
        (('message ',), (' exceeds',), ('length', 'size')),
    ('message (is |was )?too (big|large)', 32):
        (('message ',), ('too ',), ('large', 'big')),
    ('exceeds (the )?(maximum|fixed) (allowed )?(message )?size', 32):
        (('exceeds ',), ('maximum', 'fixed'), ('size',)),
    ('size limit', 32):
        (('size limit',),),
    ('message file too big', 32):
        (('message file too big',),),
    ('mail size', 32):
        (('mail size',),),
    ('size exceeds', 32):
        (('size exceeds',),),
    ('line limit exceeded', 32):
        (('line limit exceeded',),),
    ('too big', 32):
        (('too big',),),
    ('(mailbox|mail ?box|inbox|mail folder|user|account|recipient).{0,30}(\\bfull\\b|quota|over (the )?limit|exceeds (allowed|the) size)', 32):
        (('exceeds ', 'over ', 'quota', 'full'), ('recipient', 'account', 'inbox', 'mail', 'user')),
    ('quota exceeded', 32):
        (('quota exceeded',),),
    ('over ?quota', 32):
        (('quota',), ('over',)),
    ('exceeded (the |their )?(storage|quota)', 32):
        (('exceeded ',), ('storage', 'quota')),
    ('(mailbox|inbox) is over its (storage )?limit', 32):
        ((' is over its ',), ('limit',), ('mailbox', 'inbox')),
    ('storage limit', 32):
        (('storage limit',),),
    ('insufficient space', 32):
        (('insufficient space',),),
    ('out of (storage|space)', 32):
        (('out of ',), ('torage', 'pace')),
    ('not enough (storage|space)', 32):
        (('not enough ',), ('torage', 'pace')),
    ('mailbox exceed', 32):
        (('mailbox exceed',),),
    ('(メールボックス|メール容量|容量|ボックス).{0,12}(一杯|いっぱい|満杯|超過|オーバー|不足)', 32):
        (('ボックス', '容量'), ('いっぱい', 'オーバー', '一杯', '不足', '満杯', '超過')),
    ('authentication (is )?required', 32):
        (('authentication ',), ('required',)),
    ('must (be )?authenticat', 32):
        (('authenticat',), ('must ',)),
    ('relay through this server without', 32):
        (('relay through this server without',),),
    ('auth(entication)? credentials invalid', 32):
        ((' credentials invalid',), ('auth',)),
    ('login failed', 32):
        (('login failed',),),
    ('smtp auth', 32):
        (('smtp auth',),),
    ('delivery not authori[sz]ed', 32):
        (('delivery not authori',),),
    ('sender (address )?(rejected|denied|refused|not allowed|unknown|invalid)', 32):
        (('sender ',), ('not allowed', 'rejected', 'invalid', 'refused', 'unknown', 'denied')),
    ('(domain|address) of sender', 32):
        ((' of sender',), ('address', 'domain')),
    ('sender domain', 32):
        (('sender domain',),),
    ('not owned by user', 32):
        (('not owned by user',),),
    ('unroutable sender', 32):
        (('unroutable sender',),),
    ('sender.{0,20}(verify|verification) failed', 32):
        ((' failed',), ('sender',), ('verif',)),
    ('invalid sender', 32):
        (('invalid sender',),),
    ('from: domain is invalid', 32):
        (('from: domain is invalid',),),
    ('purported responsible address', 32):
        (('purported responsible address',),),
    ('sending to/from an address', 32):
        (('sending to/from an address',),),
    ('mail rejected by destination domain', 32):
        (('mail rejected by destination domain',),),
    ('permission to post', 32):
        (('permission to post',),),
    ('\\bgoogle groups(?![a-z])', 32):
        (('google groups',),),
    ('not a member of', 32):
        (('not a member of',),),
    ('投稿する権限', 32):
        (('投稿する権限',),),
    ('sender was rejected', 32):
        (('sender was rejected',),),
    ('has moved', 32):
        (('has moved',),),
    ('no longer (at|with)', 32):
        (('no longer ',),),
    ('address (has )?changed', 32):
        (('address ',), ('changed',)),
    ('moved to', 32):
        (('moved to',),),
    ('not our (user|customer)', 32):
        (('not our ',), ('customer', 'user')),
    ('user not local', 32):
        (('user not local',),),
    ('(account|mailbox|user|address)\\S*.{0,40}(suspended|disabled|inactive|deactivated|expired|(temporary|temporarily )?locked|frozen)', 32):
        (('deactivated', 'suspended', 'disabled', 'inactive', 'expired', 'frozen', 'locked'), ('account', 'address', 'mailbox', 'user')),
    ('is (currently )?(suspended|disabled|inactive)', 32):
        (('suspended', 'disabled', 'inactive'), ('is ',)),
    ('not active', 32):
        (('not active',),),
    ('relay(ing)? (access )?(denied|not permitted|prohibited|not allowed)', 32):
        (('not permitted', 'not allowed', 'prohibited', 'denied'), ('relay',)),
    ('no relaying', 32):
        (('no relaying',),),
    ('not permitted to relay', 32):
        (('not permitted to relay',),),
    ('unable to relay', 32):
        (('unable to relay',),),
    ('we do not relay', 32):
        (('we do not relay',),),
    ('cannot relay', 32):
        (('cannot relay',),),
    ('not (a )?(local|our) (domain|host)', 32):
        (('not ',), ('domain', 'host'), ('local', 'our')),
    ('not configured to relay', 32):
        (('not configured to relay',),),
    ('insecure mail relay', 32):
        (('insecure mail relay',),),
    ('email address is not verified', 32):
        (('email address is not verified',),),
    ('host(name)? (or domain name )?(not found|unknown)', 32):
        (('not found', 'unknown'), ('host',)),
    ('unknown host', 32):
        (('unknown host',),),
    ('domain (not found|does not exist|unknown|is not reachable)', 32):
        (('domain ',), ('is not reachable', 'does not exist', 'not found', 'unknown')),
    ('name or service not known', 32):
        (('name or service not known',),),
    ('nxdomain', 32):
        (('nxdomain',),),
    ('no such (domain|host)', 32):
        (('no such ',), ('domain', 'host')),
    ('unrouteable (mail )?(domain|address)', 32):
        (('unrouteable ',), ('address', 'domain')),
    ('unknown domain', 32):
        (('unknown domain',),),
    ('bad destination system', 32):
        (('bad destination system',),),
    ('account or domain may not exist', 32):
        (('account or domain may not exist',),),
    ('^\\d{3} \\S+\\.\\S+ does not exist', 32):
        ((' does not exist',),),
    ('mx records point to non-existent hosts', 32):
        (('mx records point to non-existent hosts',),),
    ('no mx record', 32):
        (('no mx record',),),
    ('dns lookup fail', 32):
        (('dns lookup fail',),),
    ('user ?unknown', 32):
        (('unknown',), ('user',)),
    ('unknown (user|recipient|local.?part|mailbox|address)', 32):
        (('unknown ',), ('recipient', 'address', 'mailbox', 'local', 'user')),
    ('no such (user|mailbox|recipient|address|account|person)', 32):
        (('no such ',), ('recipient', 'account', 'address', 'mailbox', 'person', 'user')),
    ("(user|mailbox|recipient|address|account|userid)\\S*.{0,40}(does not exist|doesn't exist|not exist|not found|wasn.t found|is unknown|invalid|not valid)", 32):
        (("doesn't exist", 'is unknown', 'not exist', 'not valid', 'invalid', 't found'), ('recipient', 'account', 'address', 'mailbox', 'user')),
    ('invalid (recipient|mailbox|address|user|final delivery)', 32):
        (('invalid ',), ('final delivery', 'recipient', 'address', 'mailbox', 'user')),
    ('not a valid (recipient|mailbox|user)', 32):
        (('not a valid ',), ('recipient', 'mailbox', 'user')),
    ('no mailbox', 32):
        (('no mailbox',),),
    ('mailbox unavailable', 32):
        (('mailbox unavailable',),),
    ("doesn't have an? \\S+ account", 32):
        (("doesn't have a",), (' account',)),
    ('unknown or illegal alias', 32):
        (('unknown or illegal alias',),),
    ('no valid recipients', 32):
        (('no valid recipients',),),
    ('address rejected', 32):
        (('address rejected',),),
    ('unable to deliver message to', 32):
        (('unable to deliver message to',),),
    ('bad destination mailbox', 32):
        (('bad destination mailbox',),),
    ('not listed in (the )?(domino directory|public name|address book)', 32):
        (('not listed in ',), ('domino directory', 'address book', 'public name')),
    ('address (you entered )?(couldn.t|could not|can.t|cannot) be found', 32):
        ((' be found',), ('address ',)),
    ('destinataire invalide', 32):
        (('destinataire invalide',),),
    ('(宛先|アドレス|ユーザ|アカウント).{0,12}(存在しません|存在しない|見つかりません|不明)', 32):
        (('アカウント', 'アドレス', 'ユーザ', '宛先'), ('見つかりません', '存在しません', '存在しない', '不明')),
    ('存在しない(メール)?(アドレス|ユーザ|宛先)', 32):
        (('存在しない',), ('アドレス', 'ユーザ', '宛先')),
    ('retry time(out)? exceeded', 32):
        (('retry time',), (' exceeded',)),
    ('could not be delivered (with)?in', 32):
        (('could not be delivered ',),),
    ('message expired', 32):
        (('message expired',),),
    ('delivery time expired', 32):
        (('delivery time expired',),),
    ('too long in queue', 32):
        (('too long in queue',),),
    ('queue lifetime', 32):
        (('queue lifetime',),),
    ('envelope expired', 32):
        (('envelope expired',),),
    ('gave up', 32):
        (('gave up',),),
    ('giving up', 32):
        (('giving up',),),
    ('have been failing for a long', 32):
        (('have been failing for a long',),),
    ('will be retried', 32):
        (('will be retried',),),
    ('did not accept our requests to connect', 32):
        (('did not accept our requests to connect',),),
    ('(connection|operation) timed out', 32):
        ((' timed out',), ('connection', 'operation')),
    ('timed out while (receiving|sending)', 32):
        (('timed out while ',), ('receiving', 'sending')),
    ('unable to connect', 32):
        (('unable to connect',),),
    ('establish an smtp connection', 32):
        (('establish an smtp connection',),),
    ('timeout waiting', 32):
        (('timeout waiting',),),
    ('could not (be )?deliver(ed)? for', 32):
        (('could not ',), ('deliver',), (' for',)),
    ('not been delivered .{0,30}(hours|days)', 32):
        (('not been delivered ',), ('hours', 'days')),
    ('host not reachable', 32):
        (('host not reachable',),),
    ('not delivered within', 32):
        (('not delivered within',),),
    ('aborted after [\\d.]+ ?(hour|day)', 32):
        (('aborted after ',), ('hour', 'day')),
    ('cannot send message (for|within)', 32):
        (('cannot send message ',), ('within', 'for')),
    ('in the queue too long', 32):
        (('in the queue too long',),),
    ('failed (after )?\\d+ (delivery )?attempts', 32):
        (('attempts',), ('failed ',)),
    ('retry time not reached for any host after a long', 32):
        (('retry time not reached for any host after a long',),),
    ("(client|sender'?s?|your|source) ?(ip|host|address).{0,40}(blocked|rejected|listed|banned|denied)", 32):
        (('rejected', 'blocked', 'banned', 'denied', 'listed'), ('client', 'sender', 'source', 'your')),
    ('blocked (by|for)', 32):
        (('blocked ',),),
    ('spamming', 32):
        (('spamming',),),
    ('smtp server of your isp', 32):
        (('smtp server of your isp',),),
    ('not accepting connections', 32):
        (('not accepting connections',),),
    ('invalid ip for sending', 32):
        (('invalid ip for sending',),),
    ('service refuse', 32):
        (('service refuse',),),
    ('relay quota', 32):
        (('relay quota',),),
    ("messages from \\S+ weren't sent", 32):
        (('messages from ',), (" weren't sent",)),
    ('connection (rejected|denied)', 32):
        (('connection ',), ('rejected', 'denied')),
    ('all messages from \\S+ will be permanently deferred', 32):
        ((' will be permanently deferred',), ('all messages from ',)),
    ('traffic not accepted from this ip', 32):
        (('traffic not accepted from this ip',),),
    ('not in whitelist', 32):
        (('not in whitelist',),),
    ('(connection|network).{0,20}(reset|lost)', 32):
        (('connection', 'network'), ('reset', 'lost')),
    ('dns (error|failure|lookup|query)', 32):
        (('failure', 'lookup', 'error', 'query'), ('dns ',)),
    ('lookup failed', 32):
        (('lookup failed',),),
    ('no route to host', 32):
        (('no route to host',),),
    ('malformed address', 32):
        (('malformed address',),),
    ('syntax error', 32):
        (('syntax error',),),
    ('command not recognized', 32):
        (('command not recognized',),),
    ('message filtered', 32):
        (('message filtered',),),
    ('domain.filter', 32):
        (('domain',), ('filter',)),
    ('rejected by a remote mail server', 32):
        (('rejected by a remote mail server',),),
    ('recipient(.s)? preferences', 32):
        ((' preferences',), ('recipient',)),
    ('受信拒否', 32):
        (('受信拒否',),),
    ('(due to|because of) an? recipient error', 32):
        ((' recipient error',), ('because of', 'due to')),
    ('service (is )?(currently |temporarily )?unavailable', 32):
        (('unavailable',), ('service ',)),
    ('\\bpolicy\\b', 32):
        (('policy',),),
    ('prohibited', 32):
        (('prohibited',),),
    ('not allowed', 32):
        (('not allowed',),),
    ('(?<!access )\\bdenied\\b', 32):
        (('denied',),),
    ('\\bblocked\\b', 32):
        (('blocked',),),
    ('^\\d{3}[ -]rejected$', 32):
        (('rejected',),),
    ('(?:in reply to|after|progress was|smtp command:?|>>>)\\s*(?:the\\s+)?(rcpt\\b|mail\\b|end of data|end of message|data\\b|helo|ehlo|initial connection|connect)', 32):
        (('end of message', 'connect', 'data', 'ehlo', 'helo', 'mail', 'rcpt'), ('progress was', 'smtp command', 'in reply to', 'after', '>>>')),
}
