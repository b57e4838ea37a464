//! The readable part of an authenticated message: its text (HTML-only bodies converted) and
//! its files, byte for byte. `Debug` shows sizes, never the text (patient data).

use mail_parser::{MessageParser, MimeHeaders};

use crate::form;
use crate::mail::compose::Attachment;

pub struct Content {
    pub text: String,
    pub attachments: Vec<Attachment>,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content")
            .field("text_len", &self.text.len())
            .field("attachments", &self.attachments)
            .finish()
    }
}

/// Reads the innermost MIME entity: the text body (HTML-only bodies converted to text) and
/// every attachment, byte for byte, with its file name.
pub fn read_content(entity: &[u8]) -> Content {
    let Some(m) = MessageParser::default().parse(entity) else {
        return Content {
            text: String::from_utf8_lossy(entity).into_owned(),
            attachments: vec![],
        };
    };
    let text = if m.text_body_count() > 0 {
        m.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
    } else if let Some(html) = m.body_html(0) {
        form::html_to_text(&html)
    } else {
        String::new()
    };
    let attachments = m
        .attachments()
        .enumerate()
        .map(|(i, part)| {
            let content_type = part
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            Attachment {
                name: part
                    .attachment_name()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("piece-jointe-{}", i + 1)),
                content_type,
                bytes: part.contents().into(),
            }
        })
        .collect();
    Content {
        text: text.replace("\r\n", "\n"),
        attachments,
    }
}
