//! The outer headers of an incoming message, read once: who it claims to be from, whom it was
//! delivered to, how it links to earlier mail, and whether it is an automatic message.

use mail_parser::{Address, HeaderValue, Message, MessageParser};

use crate::address::EmailAddress;

/// What the intake needs from the outer headers. Never logged whole: subjects may carry
/// patient data when a GP writes one.
#[derive(Clone, Default)]
pub struct Envelope {
    pub from: Option<EmailAddress>,
    pub from_name: Option<String>,
    pub subject: String,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Delivered-To / X-Original-To first (the envelope recipient, with its plus-tag), then
    /// To and Cc.
    pub recipients: Vec<EmailAddress>,
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    /// `Some("")` for an empty return path (`<>`): a bounce.
    pub return_path: Option<String>,
    pub list_id: bool,
    pub x_autoreply: bool,
    pub x_teleavis_thread: Option<String>,
    /// Hook (issue 11): `Disposition-Notification-To`, as written (RFC 8098; see `crate::mdn`).
    pub disposition_notification_to: Option<String>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("from", &self.from)
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

fn addresses(a: Option<&Address<'_>>) -> Vec<EmailAddress> {
    let Some(a) = a else { return vec![] };
    a.iter()
        .filter_map(|x| x.address.as_deref())
        .filter_map(|s| EmailAddress::parse(s).ok())
        .collect()
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![format!("<{}>", t.trim_matches(['<', '>']))],
        HeaderValue::TextList(l) => l
            .iter()
            .map(|t| format!("<{}>", t.trim_matches(['<', '>'])))
            .collect(),
        _ => vec![],
    }
}

fn raw_header(m: &Message<'_>, name: &str) -> Option<String> {
    m.headers_raw()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

impl Envelope {
    /// `None` when the bytes are not a message at all.
    pub fn parse(raw: &[u8]) -> Option<Envelope> {
        // Headers only: the body (often megabytes of base64) is the S/MIME layer's business.
        let m = MessageParser::default().parse_headers(raw)?;
        if m.headers().is_empty() {
            return None;
        }
        let from_addr = m.from().and_then(|a| a.first());
        let mut recipients = Vec::new();
        for name in ["Delivered-To", "X-Original-To"] {
            for (_, v) in m
                .headers_raw()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                if let Ok(a) = EmailAddress::parse(v) {
                    recipients.push(a);
                }
            }
        }
        recipients.extend(addresses(m.to()));
        recipients.extend(addresses(m.cc()));
        let mut seen = std::collections::HashSet::new();
        recipients.retain(|a| seen.insert(a.clone()));
        Some(Envelope {
            from: from_addr
                .and_then(|a| a.address.as_deref())
                .and_then(|s| EmailAddress::parse(s).ok()),
            from_name: from_addr
                .and_then(|a| a.name.as_deref())
                .map(str::to_string),
            subject: m.subject().unwrap_or("").trim().to_string(),
            message_id: m
                .message_id()
                .map(|id| format!("<{}>", id.trim_matches(['<', '>']))),
            in_reply_to: ids(m.in_reply_to()),
            references: ids(m.references()),
            recipients,
            auto_submitted: raw_header(&m, "Auto-Submitted"),
            precedence: raw_header(&m, "Precedence"),
            return_path: raw_header(&m, "Return-Path")
                .map(|v| v.trim_matches(['<', '>', ' ']).to_string()),
            list_id: raw_header(&m, "List-Id").is_some(),
            x_autoreply: raw_header(&m, "X-Autoreply").is_some()
                || raw_header(&m, "X-Autorespond").is_some(),
            x_teleavis_thread: raw_header(&m, "X-Teleavis-Thread"),
            disposition_notification_to: raw_header(&m, "Disposition-Notification-To"),
        })
    }

    /// Message-IDs this message answers, most specific first.
    pub fn parent_ids(&self) -> Vec<String> {
        let mut v = self.in_reply_to.clone();
        v.extend(self.references.iter().rev().cloned());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_headers_the_intake_needs() {
        let raw = b"Return-Path: <>\r\nDelivered-To: teleexpertise+infectio@hopital.test\r\n\
From: \"Dr Martin\" <Dr.Martin@cabinet.test>\r\nTo: teleexpertise+infectio@hopital.test\r\n\
Subject: Demande\r\nMessage-ID: <abc@cabinet.test>\r\nIn-Reply-To: <x@y>\r\nReferences: <w@y> <x@y>\r\n\
Auto-Submitted: auto-replied\r\n\r\nbody\r\n";
        let e = Envelope::parse(raw).unwrap();
        assert_eq!(e.from.as_ref().unwrap().as_str(), "dr.martin@cabinet.test");
        assert_eq!(e.from_name.as_deref(), Some("Dr Martin"));
        assert_eq!(e.message_id.as_deref(), Some("<abc@cabinet.test>"));
        assert_eq!(e.recipients.len(), 1);
        assert_eq!(e.recipients[0].plus_tag(), Some("infectio"));
        assert_eq!(e.parent_ids(), vec!["<x@y>", "<x@y>", "<w@y>"]);
        assert_eq!(e.return_path.as_deref(), Some(""));
        assert_eq!(e.auto_submitted.as_deref(), Some("auto-replied"));
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert!(Envelope::parse(b"").is_none());
    }
}
