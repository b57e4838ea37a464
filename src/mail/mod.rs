//! Network edges: TLS, the IMAP session, the SMTP transport and MIME building (no policy).
