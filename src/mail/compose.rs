//! Building the cleartext RFC 5322 messages the gateway sends (signing and encryption happen
//! later, in the outbox): headers of the mail conventions, a text body, attachments unchanged.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;

use crate::address::EmailAddress;

/// A file carried unchanged, byte for byte. Shared, not copied, when the same file goes into
/// several messages (the forward, the relays of an answer).
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Arc<[u8]>,
}

impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("content_type", &self.content_type)
            .field("size", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

/// Everything a message says, before it gets its Message-ID from the outbox row.
#[derive(Clone)]
pub struct Outgoing {
    pub from_name: String,
    pub from: EmailAddress,
    pub to: Vec<EmailAddress>,
    pub reply_to: Option<EmailAddress>,
    /// Only the thread token, the category and a word: never patient data.
    pub subject: String,
    /// `TE-…`, for `X-Teleavis-Thread`.
    pub thread: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Automatic notices carry `Auto-Submitted: auto-generated` (RFC 3834).
    pub automatic: bool,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// Further headers set by the gateway itself (e.g. `X-MSS-CODECDA`): fixed names, values
    /// that carry no patient data.
    pub extra_headers: Vec<(&'static str, String)>,
    /// Makes the message a `multipart/report` (RFC 6522): `text` is its human-readable part,
    /// this its machine-readable one.
    pub report: Option<Report>,
}

/// The machine-readable part of a `multipart/report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `disposition-notification` (RFC 8098): the part is `message/<report_type>`.
    pub report_type: &'static str,
    /// Its fields, `Name: value` lines, ASCII.
    pub fields: String,
}

fn bare(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The cleartext message with CRLF line endings.
pub fn build(o: &Outgoing, message_id: &str, date: DateTime<Utc>) -> std::io::Result<Vec<u8>> {
    let mut b = MessageBuilder::new()
        .from((o.from_name.clone(), o.from.as_str().to_string()))
        .to(o
            .to
            .iter()
            .map(|a| a.as_str().to_string())
            .collect::<Vec<_>>())
        .subject(o.subject.clone())
        .message_id(bare(message_id))
        .date(date.timestamp());
    if let Some(r) = &o.reply_to {
        b = b.reply_to(r.as_str().to_string());
    }
    if let Some(irt) = &o.in_reply_to {
        b = b.in_reply_to(bare(irt));
    }
    if !o.references.is_empty() {
        b = b.references(o.references.iter().map(|r| bare(r)).collect::<Vec<_>>());
    }
    if o.automatic {
        b = b.header("Auto-Submitted", Raw::new("auto-generated"));
    }
    if let Some(t) = &o.thread {
        b = b.header("X-Teleavis-Thread", Raw::new(t.clone()));
    }
    for (name, value) in &o.extra_headers {
        b = b.header(*name, Raw::new(value.clone()));
    }
    if let Some(r) = &o.report {
        let kind = format!("message/{}", r.report_type);
        let fields = r.fields.replace("\r\n", "\n").replace('\n', "\r\n");
        b = b.body(MimePart::new(
            ContentType::new("multipart/report").attribute("report-type", r.report_type),
            vec![
                MimePart::new(
                    ContentType::new("text/plain").attribute("charset", "utf-8"),
                    o.text.replace("\r\n", "\n"),
                ),
                MimePart::new(ContentType::new(kind), fields.into_bytes())
                    .transfer_encoding("7bit"),
            ],
        ));
        let raw = b.write_to_vec()?;
        return Ok(crate::mail::normalize_crlf_owned(raw));
    }
    b = b.text_body(o.text.replace("\r\n", "\n"));
    // Attachments are borrowed, not copied, and the output is sized once for their base64
    // (4/3, plus line ends): a large forward holds one copy of each file and one of itself.
    let mut size = o.text.len() + 8 * 1024;
    for a in &o.attachments {
        b = b.attachment(a.content_type.clone(), a.name.clone(), &a.bytes[..]);
        size += a.bytes.len() / 57 * 78 + 1024;
    }
    let mut raw = Vec::with_capacity(size);
    b.write_to(&mut raw)?;
    Ok(crate::mail::normalize_crlf_owned(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn headers_of_the_mail_conventions() {
        let o = Outgoing {
            from_name: "Téléexpertise".into(),
            from: addr("teleexpertise@hopital.test"),
            to: vec![addr("dr.martin@cabinet.test")],
            reply_to: Some(addr("teleexpertise+te-2026-000042@hopital.test")),
            subject: "[TE-2026-000042] Réponse — Maladies infectieuses".into(),
            thread: Some("TE-2026-000042".into()),
            in_reply_to: Some("<a@b>".into()),
            references: vec!["<a@b>".into()],
            automatic: true,
            text: "Bonjour,\nvoici la réponse.\n".into(),
            attachments: vec![Attachment {
                name: "résultats.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: Arc::from(&b"%PDF-1.4 fake"[..]),
            }],
            extra_headers: vec![("X-MSS-INS", "N".into())],
            report: None,
        };
        let raw = build(&o, "<teleavis.1.2@hopital.test>", Utc::now()).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.contains("Message-ID: <teleavis.1.2@hopital.test>"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-generated"));
        assert!(text.contains("X-Teleavis-Thread: TE-2026-000042"));
        assert!(text.contains("X-MSS-INS: N\r\n"));
        assert!(text.contains("teleexpertise+te-2026-000042@hopital.test"));
        assert!(
            !raw.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
            "bare LF"
        );
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            parsed.subject(),
            Some("[TE-2026-000042] Réponse — Maladies infectieuses")
        );
        let att = parsed.attachments().next().unwrap();
        assert_eq!(att.contents(), b"%PDF-1.4 fake");
        assert_eq!(att.attachment_name(), Some("résultats.pdf"));
    }
}
