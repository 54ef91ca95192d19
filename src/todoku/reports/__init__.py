"""Reports other mail servers send about our domains: DMARC aggregate reports (RFC 7489 §7.2,
Appendix C: zip/gzip XML) and SMTP TLS reports (RFC 8460: gzip JSON). Pure and offline: bytes
in, frozen values out, for ``todoku reports list`` now and the web side later.

Everything here reads untrusted bytes and is bounded (``unpack``: compressed and unpacked sizes,
zip members; ``dmarc``: no DTD or entities at all, element count and depth; ``tlsrpt``: size,
nesting, counts). A report that breaks a bound or the format is a ``ReportError`` with one line
saying why, never a traceback.
"""

from todoku.reports.unpack import ReportError

__all__ = ["ReportError"]
