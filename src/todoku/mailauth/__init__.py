"""Package mailauth authenticates mail: DKIM keys and signing for what our users send, and the
SPF (RFC 7208), DKIM (RFC 6376) and DMARC (RFC 7489) checks, DNS blocklists, rate limits and
greylisting for what arrives on the MX; plus the DNS records an administrator must publish.

Invariants:
- Every DNS question goes through the configured resolver (``[dns] nameservers``) via
  ``lookup.Lookups``; nothing here opens its own sockets, so tests use the loopback DNS server.
- Evaluation never raises on bad input or DNS trouble: it returns a result word
  (``pass``/``fail``/``temperror``/...) that the SMTP adapter turns into a standard reply.
- Checks that are not configured cost nothing: the MX skips them, submission never runs them.
"""
