//! Per-kind value checks of one form copy (yes/no, sex, date, choice, NIR and its agreement with the identity).

use chrono::{Datelike, NaiveDate};

use crate::form::fold::fold;
use crate::form::nir::{Nir, NirSex};
use crate::form::request::Sex;
use crate::form::template::{FieldKind, FieldSpec, FormTemplate};
use crate::form::{FieldValue, FormProblem};

use super::FormCopy;

fn problem(spec: &FieldSpec, message: String) -> FormProblem {
    FormProblem {
        key: spec.key.clone(),
        label: spec.label.clone(),
        message: format!("{} : {message}", spec.label),
    }
}

/// Checks every field of one copy; returns the understood values (canonical where the kind has
/// a canonical spelling, as written otherwise) and the problems.
pub(super) fn check_copy(
    template: &FormTemplate,
    copy: &FormCopy,
    today: NaiveDate,
) -> (Vec<FieldValue>, Vec<FormProblem>) {
    let mut fields = Vec::new();
    let mut problems = Vec::new();
    let mut sex = None;
    let mut birth_date = None;
    let mut nir = None;
    for (spec, value) in template.fields.iter().zip(copy) {
        let raw = value.as_deref().unwrap_or("");
        if raw.is_empty() {
            if spec.required {
                problems.push(problem(spec, "champ obligatoire non rempli".into()));
            }
            continue;
        }
        let checked = match &spec.kind {
            FieldKind::Text => Ok(raw.to_string()),
            FieldKind::YesNo => parse_yes_no(raw)
                .map(|b| if b { "oui" } else { "non" }.to_string())
                .ok_or_else(|| format!("« {raw} » : répondez oui ou non")),
            FieldKind::Date => match parse_date(raw) {
                None => Err(format!("« {raw} » n'est pas une date valide (jj/mm/aaaa)")),
                Some(d) if spec.key == "birth_date" && d > today => {
                    Err(format!("« {raw} » est dans le futur"))
                }
                Some(d) if spec.key == "birth_date" && d.year() < 1900 => Err(format!(
                    "« {raw} » n'est pas une date de naissance plausible"
                )),
                Some(d) => {
                    if spec.key == "birth_date" {
                        birth_date = Some(d);
                    }
                    Ok(d.format("%d/%m/%Y").to_string())
                }
            },
            FieldKind::Sex => match parse_sex(raw) {
                Some(s) => {
                    sex = Some(s);
                    Ok(s.letter().to_string())
                }
                None => Err(format!("« {raw} » n'est pas reconnu (F ou M)")),
            },
            FieldKind::Choice(choices) => {
                let key = |s: &str| {
                    fold(s)
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .collect::<String>()
                };
                choices
                    .iter()
                    .find(|c| key(c) == key(raw))
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "« {raw} » ne fait pas partie des choix possibles ({})",
                            choices.join(", ")
                        )
                    })
            }
            FieldKind::Nir => match Nir::parse(raw) {
                Ok(n) => {
                    let shown = n.formatted();
                    nir = Some(n);
                    Ok(shown)
                }
                Err(e) => Err(format!("« {raw} » : {e}")),
            },
        };
        match checked {
            Ok(v) => {
                if spec.key == "consent" && v != "oui" {
                    problems.push(problem(
                        spec,
                        "le consentement du patient est requis".into(),
                    ));
                }
                fields.push(FieldValue {
                    key: spec.key.clone(),
                    label: spec.label.clone(),
                    value: v,
                });
            }
            Err(message) => {
                problems.push(problem(spec, message));
                // Keep what was written, so the form sent back shows it for correction.
                fields.push(FieldValue {
                    key: spec.key.clone(),
                    label: spec.label.clone(),
                    value: raw.to_string(),
                });
            }
        }
    }
    if let (Some(nir), Some(spec)) = (nir, template.field("nir")) {
        problems.extend(nir_agreement(spec, &nir, sex, birth_date));
    }
    (fields, problems)
}

/// The NIR's sex digit, birth year and month must agree with the rest of the identity: a
/// mismatch usually means a typo or the wrong patient's card.
fn nir_agreement(
    spec: &FieldSpec,
    nir: &Nir,
    sex: Option<Sex>,
    birth_date: Option<NaiveDate>,
) -> Vec<FormProblem> {
    let mut out = Vec::new();
    let digit = &nir.as_str()[..1];
    if let Some(sex) = sex {
        let nir_sex = match nir.sex() {
            NirSex::Male => Sex::M,
            NirSex::Female => Sex::F,
        };
        if nir_sex != sex {
            out.push(problem(
                spec,
                format!(
                    "le premier chiffre du NIR ({digit}, {}) ne correspond pas au sexe indiqué ({})",
                    if nir_sex == Sex::M { "homme" } else { "femme" },
                    sex.letter()
                ),
            ));
        }
    }
    if let Some(d) = birth_date {
        let date = d.format("%d/%m/%Y");
        if nir.birth_year_2() != (d.year().rem_euclid(100)) as u32 {
            out.push(problem(
                spec,
                format!(
                    "l'année de naissance du NIR ({:02}) ne correspond pas à la date de naissance ({date})",
                    nir.birth_year_2()
                ),
            ));
        }
        if let Some(m) = nir.birth_month()
            && m != d.month()
        {
            out.push(problem(
                spec,
                format!("le mois de naissance du NIR ({m:02}) ne correspond pas à la date de naissance ({date})"),
            ));
        }
    }
    out
}

fn parse_sex(raw: &str) -> Option<Sex> {
    match fold(raw).trim_end_matches(['.', ' ']) {
        "f" | "femme" | "feminin" | "fem" => Some(Sex::F),
        "m" | "h" | "homme" | "masculin" | "masc" => Some(Sex::M),
        _ => None,
    }
}

pub(crate) fn parse_yes_no(raw: &str) -> Option<bool> {
    match fold(raw).trim_end_matches(['.', '!', ' ']) {
        "oui" | "o" | "yes" => Some(true),
        "non" | "n" | "no" => Some(false),
        _ => None,
    }
}

/// `dd/mm/yyyy`, also with one-digit day or month and `.` or `-` as separator.
pub(crate) fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim();
    let sep = s.chars().find(|c| matches!(c, '/' | '.' | '-'))?;
    let parts: Vec<&str> = s.split(sep).collect();
    let [d, m, y] = parts[..] else { return None };
    let ok = |p: &str, min: usize, max: usize| {
        (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
    };
    if !(ok(d, 1, 2) && ok(m, 1, 2) && ok(y, 4, 4)) {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}
