//! The send queue worker: claim, sign and encrypt, send, back off, retry, report.
