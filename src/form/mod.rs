//! Request form templates and the parser of the `Libellé : valeur` form.
//!
//! Pure code. `FormTemplate` says which fields a category asks for, `parse_form` reads a mail
//! body into a `ParsedForm` (values understood plus precise French problems), and
//! `ParsedForm::to_request` yields the typed `RequestForm` that is stored and forwarded.

use std::fmt;

use serde::{Deserialize, Serialize};

mod fold;
mod html;
mod nir;
mod parse;
mod request;
mod template;

pub use html::html_to_text;
pub use nir::{Nir, NirError, NirSex};
pub use parse::parse_form;
pub use request::{Patient, RequestForm, Sex};
pub use template::{COMMON_KEYS, FieldKind, FieldSettings, FieldSpec, FormError, FormTemplate};

/// One understood value. `value` is canonical for typed fields (`F`, `oui`, `23/01/1991`, the
/// NIR grouped by spaces, a choice as configured) and as written otherwise.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    pub key: String,
    pub label: String,
    pub value: String,
}

/// Something to fix, said to the GP: `message` is a full French sentence starting with the
/// label, e.g. `Date de naissance : « 31/02/1990 » n'est pas une date valide (jj/mm/aaaa)`.
/// It may quote what was written, so it belongs in the encrypted reply, never in a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormProblem {
    /// The field key, or `form` for a problem with the message as a whole.
    pub key: String,
    pub label: String,
    pub message: String,
}

// Values and messages may be patient data: Debug shows keys and sizes only.
impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FieldValue({}: <{} chars>)",
            self.key,
            self.value.chars().count()
        )
    }
}

impl fmt::Debug for FormProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FormProblem({})", self.key)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedForm {
    /// Non-empty values, in template order.
    pub fields: Vec<FieldValue>,
    pub problems: Vec<FormProblem>,
    /// The `Catégorie :` line, as written (the caller maps it to a category).
    pub category: Option<String>,
    /// `Label : value` lines whose label the category does not know, kept (key `unlisted`)
    /// so that the forward shows them.
    pub unlisted: Vec<FieldValue>,
}

impl ParsedForm {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.value.as_str())
    }

    /// The form again with what was understood, blanks where nothing was: the GP corrects it
    /// and sends it back.
    pub fn filled_in(&self, template: &FormTemplate) -> String {
        template.render(|key| self.get(key), self.category.as_deref())
    }
}

/// The folded form of a label or keyword (case, accents, spacing, `(s)` ignored), for callers
/// that match words the way forms do (mail commands, `Catégorie :` values).
pub fn fold_label(s: &str) -> String {
    fold::fold(s)
}

#[cfg(test)]
mod tests;
