//! Form templates: the common patient fields of DESIGN's table plus each category's own fields,
//! and the blank form sent to GPs.

use std::collections::HashSet;

use serde::Deserialize;

use super::fold::fold;

/// A category's own field as written in the configuration (`[[category.fields]]`), before
/// [`FormTemplate::for_category`] checks and compiles it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSettings {
    pub key: String,
    pub label: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Allowed values when `kind = "choice"`.
    #[serde(default)]
    pub choices: Vec<String>,
}

fn default_kind() -> String {
    "text".into()
}

/// What a field holds, which decides how its value is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    YesNo,
    Date,
    Choice(Vec<String>),
    Sex,
    Nir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub key: String,
    pub label: String,
    pub aliases: Vec<String>,
    pub required: bool,
    pub kind: FieldKind,
}

/// A template is wrong: only category fields from the configuration can be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("field {key:?}: unknown kind {kind:?} (text, yesno, date or choice)")]
    UnknownKind { key: String, kind: String },
    #[error("field {key:?}: kind \"choice\" needs a non-empty `choices` list")]
    NoChoices { key: String },
    #[error("field {key:?}: `choices` is only for kind \"choice\"")]
    ChoicesWithoutChoice { key: String },
    #[error("field {key:?}: key and label must not be empty")]
    Empty { key: String },
    #[error("field key {key:?} is used twice (or is a common field's key)")]
    DuplicateKey { key: String },
    #[error("field {key:?}: label or alias {label:?} is already used by another field")]
    DuplicateLabel { key: String, label: String },
}

/// Keys of the common fields, which `RequestForm` holds as typed patient data.
pub const COMMON_KEYS: [&str; 9] = [
    "birth_name",
    "used_name",
    "first_names",
    "sex",
    "birth_date",
    "birth_place",
    "nir",
    "consent",
    "question",
];

/// The label of the routing line, recognised but not part of the form.
pub(crate) const CATEGORY_LABEL: &str = "Catégorie";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormTemplate {
    pub fields: Vec<FieldSpec>,
}

fn spec(key: &str, label: &str, aliases: &[&str], required: bool, kind: FieldKind) -> FieldSpec {
    FieldSpec {
        key: key.into(),
        label: label.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        required,
        kind,
    }
}

impl FormTemplate {
    /// The patient identity, consent and question every request carries. The question comes
    /// last in the blank form but the category's fields are inserted before it.
    pub fn common() -> FormTemplate {
        use FieldKind::*;
        FormTemplate {
            fields: vec![
                spec(
                    "birth_name",
                    "Nom de naissance",
                    &["Nom", "Nom de famille"],
                    true,
                    Text,
                ),
                spec(
                    "used_name",
                    "Nom d'usage",
                    &["Nom d'usage (si différent)", "Nom marital"],
                    false,
                    Text,
                ),
                spec("first_names", "Prénom(s)", &["Prénoms"], true, Text),
                spec("sex", "Sexe", &[], true, Sex),
                spec(
                    "birth_date",
                    "Date de naissance",
                    &["Né le", "Née le", "Né(e) le", "Date de naiss."],
                    true,
                    Date,
                ),
                spec(
                    "birth_place",
                    "Lieu de naissance",
                    &["Né à", "Née à", "Né(e) à"],
                    false,
                    Text,
                ),
                spec(
                    "nir",
                    "NIR",
                    &[
                        "INS",
                        "N° de sécurité sociale",
                        "Numéro de sécurité sociale",
                        "N° SS",
                        "NIR/INS",
                    ],
                    false,
                    Nir,
                ),
                spec(
                    "consent",
                    "Consentement du patient",
                    &["Consentement"],
                    true,
                    YesNo,
                ),
                spec("question", "Question posée", &["Question"], true, Text),
            ],
        }
    }

    /// Common fields plus a category's fields, which come before the question (as on the
    /// seed's form: context first, question last).
    pub fn for_category(fields: &[FieldSettings]) -> Result<FormTemplate, FormError> {
        let mut template = FormTemplate::common();
        let question = template.fields.pop();
        for f in fields {
            let key = f.key.trim();
            if key.is_empty() || f.label.trim().is_empty() {
                return Err(FormError::Empty { key: key.into() });
            }
            let kind = match f.kind.trim().to_ascii_lowercase().as_str() {
                "text" => FieldKind::Text,
                "yesno" => FieldKind::YesNo,
                "date" => FieldKind::Date,
                "choice" => {
                    let choices: Vec<String> = f
                        .choices
                        .iter()
                        .map(|c| c.trim().to_string())
                        .filter(|c| !c.is_empty())
                        .collect();
                    if choices.is_empty() {
                        return Err(FormError::NoChoices { key: key.into() });
                    }
                    FieldKind::Choice(choices)
                }
                other => {
                    return Err(FormError::UnknownKind {
                        key: key.into(),
                        kind: other.into(),
                    });
                }
            };
            if !f.choices.is_empty() && !matches!(kind, FieldKind::Choice(_)) {
                return Err(FormError::ChoicesWithoutChoice { key: key.into() });
            }
            template.fields.push(FieldSpec {
                key: key.into(),
                label: f.label.trim().into(),
                aliases: f
                    .aliases
                    .iter()
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect(),
                required: f.required,
                kind,
            });
        }
        template.fields.extend(question);
        template.check_unique()?;
        Ok(template)
    }

    /// Two fields answering to the same label would make parsing ambiguous.
    fn check_unique(&self) -> Result<(), FormError> {
        let mut keys = HashSet::new();
        let mut labels = HashSet::from([fold(CATEGORY_LABEL)]);
        for f in &self.fields {
            if !keys.insert(f.key.as_str()) {
                return Err(FormError::DuplicateKey { key: f.key.clone() });
            }
            // Aliases of one field may fold alike (`Né le`, `Né(e) le`); across fields they may not.
            let own: HashSet<String> = f.labels().map(fold).collect();
            if let Some(l) = f.labels().find(|l| labels.contains(&fold(l))) {
                return Err(FormError::DuplicateLabel {
                    key: f.key.clone(),
                    label: l.to_string(),
                });
            }
            labels.extend(own);
        }
        Ok(())
    }

    pub fn field(&self, key: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// The empty form, one `Libellé : ` line per field, to paste into a mail.
    pub fn blank(&self) -> String {
        self.render(|_| None, None)
    }

    /// The empty form with a `Catégorie : <name>` line on top, for the help reply listing every
    /// category: sent to the plain gateway address, it still reaches the right group.
    pub fn blank_for(&self, category: &str) -> String {
        self.render(|_| None, Some(category))
    }

    /// Shared by `blank` and `ParsedForm::filled_in`: the hint in parentheses sits before the
    /// colon, where the parser skips it, so a GP can fill the form in place.
    pub(crate) fn render<'a>(
        &self,
        value: impl Fn(&str) -> Option<&'a str>,
        category: Option<&str>,
    ) -> String {
        let mut out = String::from("Les champs marqués * sont obligatoires.\n\n");
        if let Some(c) = category {
            out.push_str(&format!("{CATEGORY_LABEL} : {c}\n\n"));
        }
        for f in &self.fields {
            out.push_str(&f.label);
            if f.required {
                out.push_str(" *");
            }
            if let Some(h) = f.hint() {
                out.push_str(&format!(" ({h})"));
            }
            out.push_str(" : ");
            match value(&f.key) {
                // Long answers go under their label: easier to read and to correct.
                Some(v) if v.contains('\n') => {
                    out.push('\n');
                    out.push_str(v);
                    out.push_str("\n\n");
                }
                Some(v) => {
                    out.push_str(v);
                    out.push('\n');
                }
                None => out.push('\n'),
            }
        }
        out
    }
}

impl FieldSpec {
    /// The label then its aliases.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.label.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    fn hint(&self) -> Option<String> {
        match &self.kind {
            FieldKind::Text => None,
            FieldKind::YesNo => Some("oui/non".into()),
            FieldKind::Date => Some("jj/mm/aaaa".into()),
            FieldKind::Sex => Some("F/M".into()),
            FieldKind::Nir => Some("15 chiffres".into()),
            FieldKind::Choice(c) => Some(c.join(" / ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(key: &str, label: &str, kind: &str, choices: &[&str]) -> FieldSettings {
        FieldSettings {
            key: key.into(),
            label: label.into(),
            aliases: vec![],
            required: false,
            kind: kind.into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn category_fields_go_before_the_question() {
        let t = FormTemplate::for_category(&[fs("terrain", "Terrain sous-jacent", "text", &[])])
            .unwrap();
        let keys: Vec<_> = t.fields.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys[keys.len() - 2..], ["terrain", "question"]);
        assert_eq!(t.fields.len(), 10);
    }

    #[test]
    fn bad_category_fields_are_refused() {
        assert!(matches!(
            FormTemplate::for_category(&[fs("x", "X", "number", &[])]),
            Err(FormError::UnknownKind { .. })
        ));
        assert!(matches!(
            FormTemplate::for_category(&[fs("x", "X", "choice", &[])]),
            Err(FormError::NoChoices { .. })
        ));
        assert!(matches!(
            FormTemplate::for_category(&[fs("x", "X", "text", &["a"])]),
            Err(FormError::ChoicesWithoutChoice { .. })
        ));
        assert!(matches!(
            FormTemplate::for_category(&[fs("sex", "Genre", "text", &[])]),
            Err(FormError::DuplicateKey { .. })
        ));
        assert!(matches!(
            FormTemplate::for_category(&[fs("x", "QUESTION POSÉE", "text", &[])]),
            Err(FormError::DuplicateLabel { .. })
        ));
        assert!(matches!(
            FormTemplate::for_category(&[fs("x", "Catégorie", "text", &[])]),
            Err(FormError::DuplicateLabel { .. })
        ));
    }

    #[test]
    fn blank_form_marks_required_fields() {
        let t = FormTemplate::for_category(&[fs(
            "fr",
            "Fonction rénale",
            "choice",
            &["> 60", "30-60", "< 30"],
        )])
        .unwrap();
        let b = t.blank();
        assert!(b.starts_with("Les champs marqués * sont obligatoires."));
        assert!(b.contains("\nNom de naissance * : \n"));
        assert!(b.contains("\nNom d'usage : \n"));
        assert!(b.contains("\nDate de naissance * (jj/mm/aaaa) : \n"));
        assert!(b.contains("\nFonction rénale (> 60 / 30-60 / < 30) : \n"));
        assert!(b.ends_with("Question posée * : \n"));
    }
}
