//! The checked request: typed patient identity, consent, question and the category's fields,
//! as stored (JSON) and shown to the expert.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::nir::Nir;
use super::parse::{parse_date, parse_yes_no};
use super::template::COMMON_KEYS;
use super::{FieldValue, FormProblem, ParsedForm};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    F,
    M,
}

impl Sex {
    /// `F` or `M`, as written in the form.
    pub fn letter(self) -> &'static str {
        match self {
            Sex::F => "F",
            Sex::M => "M",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patient {
    pub birth_name: String,
    pub used_name: Option<String>,
    pub first_names: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub birth_place: Option<String>,
    pub nir: Option<Nir>,
}

/// A request whose form passed every check. Only `ParsedForm::to_request` builds one from mail.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestForm {
    pub patient: Patient,
    pub consent: bool,
    pub question: String,
    /// The category's fields, in template order, with their labels.
    pub extra: Vec<FieldValue>,
    /// Lines `Label : value` with a label the category does not know, as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlisted: Vec<FieldValue>,
}

// Debug impls print the shape, never the patient: a `{:?}` in a log line must stay harmless.
impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Patient(<redacted>)")
    }
}

impl fmt::Debug for RequestForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestForm")
            .field("patient", &self.patient)
            .field("consent", &self.consent)
            .field(
                "question",
                &format_args!("<{} chars>", self.question.chars().count()),
            )
            .field("extra", &self.extra)
            .finish()
    }
}

impl Patient {
    /// Age in whole years on `day` (the expert reads "homme, 79 ans").
    pub fn age_on(&self, day: NaiveDate) -> u32 {
        day.years_since(self.birth_date).unwrap_or(0)
    }
}

impl RequestForm {
    /// `DUPONT Jeanne`: birth name in capitals (the identity reference, as for the INS) then
    /// first names as written.
    pub fn patient_display_name(&self) -> String {
        format!(
            "{} {}",
            self.patient.birth_name.to_uppercase(),
            self.patient.first_names
        )
    }

    /// The request laid out for an expert: the patient block, then each field under its label.
    pub fn display_for_reading(&self) -> String {
        let p = &self.patient;
        let mut out = String::from("Patient\n");
        out.push_str(&format!(
            "  Nom de naissance : {}\n",
            p.birth_name.to_uppercase()
        ));
        if let Some(u) = &p.used_name {
            out.push_str(&format!("  Nom d'usage : {}\n", u.to_uppercase()));
        }
        out.push_str(&format!("  Prénom(s) : {}\n", p.first_names));
        let (sex, born) = match p.sex {
            Sex::F => ("femme", "née"),
            Sex::M => ("homme", "né"),
        };
        out.push_str(&format!(
            "  Sexe : {sex}, {born} le {}",
            p.birth_date.format("%d/%m/%Y")
        ));
        if let Some(place) = &p.birth_place {
            out.push_str(&format!(" à {place}"));
        }
        out.push('\n');
        if let Some(nir) = &p.nir {
            out.push_str(&format!("  NIR : {}\n", nir.formatted()));
        }
        out.push_str(if self.consent {
            "  Le requérant atteste le consentement exprès du patient.\n"
        } else {
            "  Consentement du patient : non recueilli\n"
        });
        for f in &self.extra {
            push_block(&mut out, &f.label, &f.value);
        }
        for f in &self.unlisted {
            push_block(
                &mut out,
                &format!("{} (hors formulaire)", f.label),
                &f.value,
            );
        }
        push_block(&mut out, "Question posée", &self.question);
        out
    }
}

/// `Label :` then the value, on the same line when short, indented below when it spans lines.
fn push_block(out: &mut String, label: &str, value: &str) {
    out.push('\n');
    if value.contains('\n') {
        out.push_str(&format!("{label} :\n"));
        for line in value.lines() {
            out.push_str(line);
            out.push('\n');
        }
    } else {
        out.push_str(&format!("{label} : {value}\n"));
    }
}

impl ParsedForm {
    /// The typed request, or the problems that prevent it.
    pub fn to_request(&self) -> Result<RequestForm, Vec<FormProblem>> {
        if !self.problems.is_empty() {
            return Err(self.problems.clone());
        }
        let mut problems = Vec::new();
        // The parser already checked every value; these only fail if a field is absent, which
        // happens with a template that lacks a common field.
        let mut need = |key: &str, label: &str| -> String {
            match self.get(key) {
                Some(v) => v.to_string(),
                None => {
                    problems.push(FormProblem {
                        key: key.into(),
                        label: label.into(),
                        message: format!("{label} : champ obligatoire non rempli"),
                    });
                    String::new()
                }
            }
        };
        let birth_name = need("birth_name", "Nom de naissance");
        let first_names = need("first_names", "Prénom(s)");
        let sex = need("sex", "Sexe");
        let birth_date = need("birth_date", "Date de naissance");
        let consent = need("consent", "Consentement du patient");
        let question = need("question", "Question posée");
        let invalid = |key: &str, label: &str| FormProblem {
            key: key.into(),
            label: label.into(),
            message: format!("{label} : valeur invalide"),
        };
        let sex = match sex.as_str() {
            "F" => Some(Sex::F),
            "M" => Some(Sex::M),
            _ => None,
        };
        let birth_date = parse_date(&birth_date);
        let nir = self.get("nir").map(Nir::parse).transpose();
        let consent = parse_yes_no(&consent) == Some(true);
        if !problems.is_empty() {
            return Err(problems);
        }
        let (Some(sex), Some(birth_date), Ok(nir), true) = (sex, birth_date, nir, consent) else {
            return Err(vec![invalid("form", "Formulaire")]);
        };
        let optional = |key: &str| self.get(key).map(str::to_string);
        Ok(RequestForm {
            patient: Patient {
                birth_name,
                used_name: optional("used_name"),
                first_names,
                sex,
                birth_date,
                birth_place: optional("birth_place"),
                nir,
            },
            consent,
            question,
            extra: self
                .fields
                .iter()
                .filter(|f| !COMMON_KEYS.contains(&f.key.as_str()))
                .cloned()
                .collect(),
            unlisted: self.unlisted.clone(),
        })
    }
}
