//! Delivery status notifications (RFC 3464) about the gateway's own mail: which outgoing
//! message bounced and why, so the outbox row is failed and the admin told.

use regex::Regex;
use std::sync::LazyLock;

static OUR_ID: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"<teleavis\.\d+\.\d+@[^>\s]+>").ok());
static DIAGNOSTIC: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?im)^(?:Diagnostic-Code|Status|Action):[ \t]*(.+)$").ok());

/// A bounce of one of the gateway's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The Message-IDs of gateway messages it names (from the returned headers).
    pub message_ids: Vec<String>,
    /// `Action`, `Status` and `Diagnostic-Code` fields, for the admin.
    pub diagnostic: String,
}

/// Reads a bounce: `None` when the message names no outgoing message of `domain`.
pub fn read(raw: &[u8], domain: &str) -> Option<Bounce> {
    let text = String::from_utf8_lossy(raw);
    let mut ids: Vec<String> = OUR_ID
        .as_ref()?
        .find_iter(&text)
        .map(|m| m.as_str().to_string())
        .filter(|id| {
            id.trim_end_matches('>')
                .rsplit('@')
                .next()
                .is_some_and(|d| d.eq_ignore_ascii_case(domain))
        })
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return None;
    }
    let diagnostic = DIAGNOSTIC
        .as_ref()
        .map(|re| {
            re.captures_iter(&text)
                .filter_map(|c| c.get(0))
                .map(|m| m.as_str().trim().to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    Some(Bounce {
        message_ids: ids,
        diagnostic: diagnostic.chars().take(500).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bounced_message_and_the_diagnostic() {
        let dsn = b"From: MAILER-DAEMON@hopital.test\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\
Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; localhost\r\n\r\nFinal-Recipient: rfc822; x@ailleurs.example\r\n\
Action: failed\r\nStatus: 5.0.0\r\nDiagnostic-Code: X-Postfix; no external delivery in tests\r\n\r\n--b\r\n\
Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <teleavis.12.1764250000@hopital.test>\r\nSubject: x\r\n--b--\r\n";
        let b = read(dsn, "hopital.test").unwrap();
        assert_eq!(b.message_ids, vec!["<teleavis.12.1764250000@hopital.test>"]);
        assert!(b.diagnostic.contains("Status: 5.0.0"));
        assert!(b.diagnostic.contains("no external delivery"));
    }

    #[test]
    fn other_domains_and_other_mail_are_not_ours() {
        assert!(
            read(
                b"Message-ID: <teleavis.1.2@ailleurs.example>",
                "hopital.test"
            )
            .is_none()
        );
        assert!(read(b"Subject: vacances\r\n\r\nabsent", "hopital.test").is_none());
    }
}
