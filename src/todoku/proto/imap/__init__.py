"""The IMAP core (RFC 9051, RFC 3501 and extensions): sans-I/O, like the SMTP and POP3 ones."""
