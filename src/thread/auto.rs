//! RFC 3834 loop protection: recognising mail that must not get an automatic reply.

use crate::address::EmailAddress;

/// The headers that tell an automatic message apart, as the mail layer extracted them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoHeaders {
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    /// `Some("")` or `Some("<>")`: the null sender of bounces.
    pub return_path: Option<String>,
    pub from: Option<EmailAddress>,
    /// A `List-Id` header is present.
    pub list_id: bool,
    /// `X-Autoreply` or `X-Autorespond` is present.
    pub x_autoreply: bool,
}

/// True when the message was sent by a machine (auto-reply, bounce, list): it may be recorded
/// but never answered automatically. The gateway's own mail is recognised by the caller
/// (`X-Teleavis-Thread` and its own address).
pub fn is_automatic(h: &AutoHeaders) -> bool {
    let value = |v: &Option<String>| {
        v.as_deref().map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    };
    if value(&h.auto_submitted).is_some_and(|v| v != "no") {
        return true;
    }
    if value(&h.precedence).is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list")) {
        return true;
    }
    if h.return_path.as_deref().is_some_and(|r| {
        let r = r.trim();
        r.is_empty()
            || r.trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .is_empty()
    }) {
        return true;
    }
    if h.from.as_ref().is_some_and(|a| {
        let local = a.base();
        matches!(local.local(), "mailer-daemon" | "postmaster")
    }) {
        return true;
    }
    h.list_id || h.x_autoreply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(a: &str) -> Option<EmailAddress> {
        Some(EmailAddress::parse(a).unwrap())
    }

    #[test]
    fn human_mail_is_not_automatic() {
        let h = AutoHeaders {
            auto_submitted: Some("no".into()),
            return_path: Some("<dr.x@y.mssante.fr>".into()),
            from: from("dr.x@y.mssante.fr"),
            ..Default::default()
        };
        assert!(!is_automatic(&h));
        assert!(!is_automatic(&AutoHeaders::default()));
        assert!(!is_automatic(&AutoHeaders {
            precedence: Some("first-class".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn automatic_mail() {
        let cases = [
            AutoHeaders {
                auto_submitted: Some("auto-replied".into()),
                ..Default::default()
            },
            AutoHeaders {
                auto_submitted: Some("Auto-Generated; owner-email=x@y.fr".into()),
                ..Default::default()
            },
            AutoHeaders {
                precedence: Some("Bulk".into()),
                ..Default::default()
            },
            AutoHeaders {
                precedence: Some("junk".into()),
                ..Default::default()
            },
            AutoHeaders {
                precedence: Some("list".into()),
                ..Default::default()
            },
            AutoHeaders {
                return_path: Some("".into()),
                ..Default::default()
            },
            AutoHeaders {
                return_path: Some("<>".into()),
                ..Default::default()
            },
            AutoHeaders {
                return_path: Some(" < > ".into()),
                ..Default::default()
            },
            AutoHeaders {
                from: from("MAILER-DAEMON@mx.y.fr"),
                ..Default::default()
            },
            AutoHeaders {
                from: from("postmaster@y.fr"),
                ..Default::default()
            },
            AutoHeaders {
                list_id: true,
                ..Default::default()
            },
            AutoHeaders {
                x_autoreply: true,
                ..Default::default()
            },
        ];
        for h in cases {
            assert!(is_automatic(&h), "{h:?}");
        }
    }
}
