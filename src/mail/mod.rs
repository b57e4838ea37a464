//! Network edges: TLS, the IMAP session, the SMTP transport and MIME building (no policy).
//!
//! - `tls`: the rustls client configuration shared by IMAP and SMTP (CA from `ca_file` only
//!   when it is set, client certificate, private-key permission check).
//! - `imap`: one authenticated IMAP session: list/create mailboxes, select, UID search, fetch
//!   exact bytes, MOVE (or COPY + STORE + UID EXPUNGE of that one UID), IDLE.
//! - `smtp`: the lettre transport and the temporary / permanent classification of failures.
//! - `utf7`: RFC 3501 modified UTF-7 for mailbox names such as `Traités`.
//!
//! Nothing here decides what to do with a message; errors carry the host, port and step so that
//! an operator can tell a wrong CA from a wrong password from a dead server.

use std::borrow::Cow;
use std::path::PathBuf;

pub mod compose;
pub mod imap;
pub mod smtp;
mod smtp_limits;
pub mod smtp_session;
pub mod tls;
pub mod utf7;

pub use imap::{IdleOutcome, ImapClient, MailboxState};
pub use smtp::{SendError, SmtpSender};
pub use smtp_session::SmtpSession;

/// Why an IMAP or SMTP operation failed, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// A local file (CA, certificate, key, password) is missing, unreadable, malformed or unsafe.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// The settings cannot work (e.g. `auth = "external"` without a client certificate).
    #[error("{protocol} configuration: {message}")]
    Config {
        protocol: &'static str,
        message: String,
    },
    /// The server, the network or TLS failed during `step`.
    #[error("{protocol} {host}:{port}: {step}: {message}")]
    Remote {
        protocol: &'static str,
        host: String,
        port: u16,
        step: &'static str,
        message: String,
    },
    /// No answer within the time limit during `step`.
    #[error("{protocol} {host}:{port}: {step}: no answer within {seconds} s")]
    Timeout {
        protocol: &'static str,
        host: String,
        port: u16,
        step: &'static str,
        seconds: u64,
    },
}

impl MailError {
    pub(crate) fn file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> MailError {
        MailError::File {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// Which step failed, for remote errors and timeouts (`connect`, `tls`, `authenticate`…).
    pub fn step(&self) -> Option<&'static str> {
        match self {
            MailError::Remote { step, .. } | MailError::Timeout { step, .. } => Some(step),
            _ => None,
        }
    }
}

/// Turns every bare LF into CRLF and leaves existing CRLF pairs alone (SMTP needs CRLF; lettre
/// sends the bytes as given). A lone CR is left as it is. Borrows when nothing changes. The one
/// implementation is S/MIME's canonicalisation (`smime/mime.rs`), which signatures depend on.
pub fn normalize_crlf(raw: &[u8]) -> Cow<'_, [u8]> {
    crate::smime::mime::canonical_crlf(raw)
}

/// [`normalize_crlf`] on an owned buffer: gives it back untouched when it is already canonical,
/// so a large message is never copied for nothing.
pub fn normalize_crlf_owned(raw: Vec<u8>) -> Vec<u8> {
    crate::smime::mime::canonical_crlf_owned(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_untouched_borrows() {
        let raw = b"Subject: a\r\n\r\nbody\r\n";
        assert!(matches!(normalize_crlf(raw), Cow::Borrowed(_)));
        assert_eq!(&*normalize_crlf(raw), raw);
        assert!(matches!(normalize_crlf(b""), Cow::Borrowed(_)));
    }

    #[test]
    fn owned_buffer_kept_when_canonical() {
        let raw = b"a\r\nb\r\n".to_vec();
        let ptr = raw.as_ptr();
        let same = normalize_crlf_owned(raw);
        assert_eq!(same.as_ptr(), ptr, "no copy of a canonical buffer");
        assert_eq!(normalize_crlf_owned(b"a\nb\r\nc".to_vec()), b"a\r\nb\r\nc");
    }

    #[test]
    fn bare_lf_becomes_crlf() {
        assert_eq!(&*normalize_crlf(b"a\nb\n"), b"a\r\nb\r\n");
        assert_eq!(&*normalize_crlf(b"\n"), b"\r\n");
        assert_eq!(&*normalize_crlf(b"\n\n"), b"\r\n\r\n");
    }

    #[test]
    fn mixed_endings() {
        assert_eq!(
            &*normalize_crlf(b"a\r\nb\nc\r\n\nd"),
            b"a\r\nb\r\nc\r\n\r\nd"
        );
        // A lone CR stays; CR CR LF keeps its pair.
        assert_eq!(&*normalize_crlf(b"a\rb\r\r\n"), b"a\rb\r\r\n");
    }

    #[test]
    fn idempotent() {
        let once = normalize_crlf(b"x\ny\r\nz\n").into_owned();
        assert_eq!(&*normalize_crlf(&once), &once[..]);
    }
}
