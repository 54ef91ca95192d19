"""SMTP vocabulary and the sans-I/O SMTP server core (RFC 5321 and extensions)."""
