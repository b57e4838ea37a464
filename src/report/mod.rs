//! The compte-rendu: the record of a téléexpertise, as text and as PDF.
//!
//! [`assemble`] fills a self-contained [`ReportData`] from a thread and its messages; the rest is pure
//! (no I/O, the fonts are embedded in the binary). `content` decides *what* the record says
//! (wording, dates in local time, R6316-4 CSP items), `text` and `pdf` only decide how it looks,
//! so the mail body and the PDF can never disagree.

mod assemble;
mod content;
mod font;
mod pdf;
mod subset;
mod text;

#[cfg(test)]
mod tests;

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

pub use assemble::assemble;
pub use pdf::render_pdf;
pub use text::render_text;

/// Everything the compte-rendu shows, gathered by the caller.
pub struct ReportData {
    /// Thread id, e.g. `TE-2024-000042`.
    pub thread_id: String,
    /// The network (establishment) the request was addressed to.
    pub network: String,
    /// Display name of the category, e.g. `Maladies infectieuses`.
    pub category_name: String,
    pub requested_at: DateTime<Utc>,
    /// First expert answer: the date the téléexpertise was carried out.
    pub answered_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Thread status as stored: `terminee`, `annulee`, `en_cours`, `nouvelle`…
    pub status: String,
    pub patient: ReportPatient,
    pub requester: ReportPerson,
    pub experts: Vec<ReportPerson>,
    pub consent_confirmed: bool,
    /// The request form as received: (label, value), in form order.
    pub form_lines: Vec<(String, String)>,
    pub exchanges: Vec<ReportExchange>,
    pub attachments: Vec<ReportAttachment>,
    pub generated_at: DateTime<Utc>,
    /// Dates are shown in this zone (Europe/Paris in practice).
    pub timezone: chrono_tz::Tz,
}

/// The patient's identity traits as given in the request.
pub struct ReportPatient {
    pub birth_name: String,
    pub used_name: Option<String>,
    pub first_names: String,
    /// `F` or `M`.
    pub sex: String,
    pub birth_date: NaiveDate,
    /// NIR or INS, shown as given.
    pub nir: Option<String>,
}

/// A health professional taking part (requérant or expert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPerson {
    pub name: Option<String>,
    /// MSSanté address.
    pub address: String,
    pub specialty: Option<String>,
    pub rpps: Option<String>,
}

/// One message of the thread, as relayed.
pub struct ReportExchange {
    pub author: String,
    /// `requérant` or `expert`.
    pub role: String,
    pub at: DateTime<Utc>,
    pub text: String,
}

/// One attachment of the thread (the files themselves are not in the report).
pub struct ReportAttachment {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the attachment's bytes.
    pub sha256: String,
}

/// Why a PDF could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("embedded font is unreadable: {0}")]
    Font(&'static str),
    #[error("PDF generation failed: {0}")]
    Pdf(String),
}

/// File name of the PDF attachment: `compte-rendu-TE-2024-000042.pdf`.
///
/// Only ASCII letters, digits and `-` survive, so a malformed id can never inject a path or a
/// MIME parameter.
pub fn pdf_file_name(thread_id: &str) -> String {
    let safe: String = thread_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("compte-rendu-{safe}.pdf")
}

// Debug impls never print patient data: these structs end up in logs through `?` and `{:?}`.

impl fmt::Debug for ReportData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportData")
            .field("thread_id", &self.thread_id)
            .field("network", &self.network)
            .field("category_name", &self.category_name)
            .field("requested_at", &self.requested_at)
            .field("answered_at", &self.answered_at)
            .field("closed_at", &self.closed_at)
            .field("status", &self.status)
            .field("patient", &self.patient)
            .field("requester", &self.requester)
            .field("experts", &self.experts)
            .field("consent_confirmed", &self.consent_confirmed)
            .field(
                "form_lines",
                &format_args!("<{} redacted>", self.form_lines.len()),
            )
            .field("exchanges", &self.exchanges)
            .field("attachments", &self.attachments)
            .field("generated_at", &self.generated_at)
            .field("timezone", &self.timezone)
            .finish()
    }
}

impl fmt::Debug for ReportPatient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportPatient(<redacted>)")
    }
}

impl fmt::Debug for ReportExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportExchange")
            .field("role", &self.role)
            .field("at", &self.at)
            .field(
                "text",
                &format_args!("<{} bytes redacted>", self.text.len()),
            )
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ReportAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // File names often carry the patient's name ("scanner_dupont.pdf").
        f.debug_struct("ReportAttachment")
            .field("name", &"<redacted>")
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .finish()
    }
}
