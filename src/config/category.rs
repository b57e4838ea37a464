//! `[[category]]`: the téléexpertise categories, their group addresses and form fields.

use serde::Deserialize;

use crate::address::EmailAddress;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategorySettings {
    pub id: String,
    pub name: String,
    pub group_address: EmailAddress,
    #[serde(default)]
    pub aliases: Vec<EmailAddress>,
    #[serde(default)]
    pub experts: Vec<EmailAddress>,
    #[serde(default)]
    pub response_time: String,
    /// Phone number for urgent cases, given in the acknowledgement.
    pub phone: Option<String>,
    /// Hours within which an expert should answer (the desk's deadline); fractions allowed
    /// (`0.5`: 30 minutes). The reminder goes at the deadline, the escalation at twice it.
    #[serde(default = "default_deadline_hours")]
    pub deadline_hours: f64,
    /// The urgent line's deadline, when the category has one.
    pub urgent_deadline_minutes: Option<u32>,
    /// Where a thread still unanswered at twice its deadline is escalated (default
    /// `gateway.admin_address`).
    pub escalation_address: Option<EmailAddress>,
    #[serde(default)]
    pub fields: Vec<FieldSettings>,
}

/// A category's own form field as configured; the `form` module compiles it into its template.
pub use crate::form::FieldSettings;

fn default_deadline_hours() -> f64 {
    48.0
}
