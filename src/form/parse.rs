//! The parser of the `Libellé : valeur` request form and the checks on each value.
//!
//! Rules (DESIGN "Request form"): labels match whatever the case, accents, spacing before the
//! colon or a trailing `(s)`/`(e)`; a label at the start of a line with its value and no colon
//! counts too; a value runs over the following lines until the next known label. On top of that,
//! for what GPs really send:
//! - without a colon, only a field's main label or a several-word alias counts (`Né le …`,
//!   `Fonction rénale récente 30-60`, not `Terrain favorable…`), never one whose field is
//!   already filled, and never when the rest of the line holds a `Label :` of its own;
//! - a signature separator (`--`), a closing formula alone on its line (`Cordialement`,
//!   `Bien confraternellement`…), or a `>` quoted line ends the value being read; the lines after
//!   it are ignored until the next label;
//! - quoted history (`Le … a écrit :`, Outlook header blocks, `-----Message d'origine-----`) and
//!   everything below it is ignored, so a reply to the gateway's "missing field" notice is read
//!   from what the GP wrote on top;
//! - a one-line kind (yes/no, sex, date, choice, NIR) takes one line: its label's line, or the
//!   first non-empty line below a label alone; what follows is no part of it;
//! - a `Label : value` line whose label the category does not know ends the value being read
//!   and is kept as an *unlisted* field (shown in the forward), never silently dropped nor
//!   glued to the previous value (`Consentement du patient : oui` then `Urgence : oui`);
//! - a form pasted more than once: a label seen again starts a new copy. Copies are never merged
//!   (that could mix two patients): the last copy without problems wins, else the one with the
//!   fewest problems (the last on a tie); copies naming different patients are a problem.

mod labels;
mod values;

use chrono::NaiveDate;

use super::fold::fold;
use super::template::{FieldKind, FormTemplate};
use super::{FieldValue, FormProblem, ParsedForm};

use labels::{LabelIndex, Target, Written, is_value_stop, unlisted_label};
use values::check_copy;
pub(crate) use values::{parse_date, parse_yes_no};

/// One occurrence of the form in the message: a value (or `None`, not seen) per template field.
pub(super) type FormCopy = Vec<Option<String>>;

/// Reads the form in `text` (plain text; see `html_to_text` for HTML bodies). `today` is the
/// date birth dates must not be after.
pub fn parse_form(template: &FormTemplate, text: &str, today: NaiveDate) -> ParsedForm {
    let index = LabelIndex::new(template);
    let lines: Vec<&str> = text.lines().collect();
    let end = crate::thread::quote_start(&lines).unwrap_or(lines.len());

    let mut copies: Vec<FormCopy> = vec![vec![None; template.fields.len()]];
    let mut category: Option<String> = None;
    let mut current: Option<(Target, Vec<&str>)> = None;
    let mut unlisted: Vec<FieldValue> = Vec::new();
    let one_line = |t: Target| match t {
        Target::Field(i) => template.fields.get(i).is_some_and(|f| {
            matches!(
                f.kind,
                FieldKind::YesNo
                    | FieldKind::Date
                    | FieldKind::Choice(_)
                    | FieldKind::Sex
                    | FieldKind::Nir
            )
        }),
        Target::Category => true,
        Target::Unlisted(_) => false,
    };

    let mut flush = |current: &mut Option<(Target, Vec<&str>)>,
                     copies: &mut Vec<FormCopy>,
                     unlisted: &mut Vec<FieldValue>| {
        if let Some((target, value_lines)) = current.take() {
            let value = clean_value(&value_lines);
            match target {
                Target::Unlisted(n) => {
                    if let Some(f) = unlisted.get_mut(n) {
                        f.value = value;
                    }
                }
                // One line: the routing word, not a paragraph.
                Target::Category => {
                    if category.is_none()
                        && let Some(first) = value.lines().map(str::trim).find(|l| !l.is_empty())
                    {
                        category = Some(first.to_string());
                    }
                }
                Target::Field(i) => {
                    if let Some(copy) = copies.last_mut() {
                        copy[i] = Some(value);
                    }
                }
            }
        }
    };

    // After a signature or closing formula, only a known label starts a value again (the
    // signature's `Tél : …` is not an unlisted field).
    let mut signed_off = false;
    for line in &lines[..end] {
        if is_value_stop(line) {
            flush(&mut current, &mut copies, &mut unlisted);
            signed_off = true;
            continue;
        }
        // A one-line value already read: this line is no part of it.
        if let Some((target, value_lines)) = &current
            && one_line(*target)
            && value_lines.iter().any(|l| !l.trim().is_empty())
        {
            flush(&mut current, &mut copies, &mut unlisted);
        }
        let matched = index.match_line(line).filter(|(target, _, written)| {
            // A loose label already filled is a sentence of the current value, not a new copy.
            let filled = |i: usize| copies.last().is_some_and(|c| c[i].is_some());
            !(*written == Written::Loose && matches!(target, Target::Field(i) if filled(*i)))
        });
        if let Some((target, start, _)) = matched {
            flush(&mut current, &mut copies, &mut unlisted);
            signed_off = false;
            if let Target::Field(i) = target
                && copies.last().is_some_and(|c| c[i].is_some())
            {
                copies.push(vec![None; template.fields.len()]);
            }
            current = Some((target, vec![line.get(start..).unwrap_or("")]));
        } else if !signed_off && let Some((label, start)) = unlisted_label(line) {
            flush(&mut current, &mut copies, &mut unlisted);
            // The same line in a form pasted twice is kept once.
            let n = unlisted.len();
            unlisted.push(FieldValue {
                key: "unlisted".into(),
                label,
                value: String::new(),
            });
            current = Some((Target::Unlisted(n), vec![line.get(start..).unwrap_or("")]));
        } else if let Some((_, value_lines)) = current.as_mut() {
            value_lines.push(line);
        }
        // Text before the first label (greetings) belongs to no field.
    }
    flush(&mut current, &mut copies, &mut unlisted);
    let mut kept: Vec<FieldValue> = Vec::new();
    for f in unlisted {
        if !f.value.is_empty() && !kept.contains(&f) {
            kept.push(f);
        }
    }
    for copy in &mut copies {
        split_birth_place(template, copy);
    }

    let checked: Vec<(Vec<FieldValue>, Vec<FormProblem>)> = copies
        .iter()
        .map(|copy| check_copy(template, copy, today))
        .collect();
    let best = checked
        .iter()
        .enumerate()
        .rev()
        .min_by_key(|(_, (_, problems))| problems.len())
        .map(|(i, _)| i)
        .unwrap_or(0);
    let conflict = patients_differ(&checked);
    let (fields, mut problems) = checked.into_iter().nth(best).unwrap_or_default();
    if conflict {
        problems.insert(
            0,
            FormProblem {
                key: "form".into(),
                label: "Formulaire".into(),
                message:
                    "le message contient plusieurs formulaires pour des patients différents ; \
                          envoyez une demande par patient"
                        .into(),
            },
        );
    }
    ParsedForm {
        fields,
        problems,
        category,
        unlisted: kept,
    }
}

/// `Né le 23/01/1991 à Metz`: the place goes to `birth_place` (unless given on its own line),
/// so the date still parses.
fn split_birth_place(template: &FormTemplate, copy: &mut FormCopy) {
    let index = |key: &str| template.fields.iter().position(|f| f.key == key);
    let (Some(d), Some(p)) = (index("birth_date"), index("birth_place")) else {
        return;
    };
    let Some(value) = copy[d].clone() else { return };
    let Some((date, place)) = value.split_once(" à ").or_else(|| value.split_once(" a ")) else {
        return;
    };
    let (date, place) = (date.trim(), place.trim());
    if parse_date(date).is_none() || place.is_empty() {
        return;
    }
    if copy[p].as_deref().is_none_or(str::is_empty) {
        copy[p] = Some(place.to_string());
    }
    copy[d] = Some(date.to_string());
}

/// Lines joined, blank lines at both ends and trailing spaces removed; a value made only of
/// placeholder punctuation (`-`, `…`, `?`) counts as empty.
fn clean_value(lines: &[&str]) -> String {
    let trimmed: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    let first = trimmed.iter().position(|l| !l.trim().is_empty());
    let last = trimmed.iter().rposition(|l| !l.trim().is_empty());
    let (Some(first), Some(last)) = (first, last) else {
        return String::new();
    };
    let mut value = trimmed[first..=last].join("\n");
    value = value.trim_start().to_string();
    if value
        .chars()
        .all(|c| c.is_whitespace() || "-_.…?/".contains(c))
    {
        return String::new();
    }
    value
}

/// Identity fields of two copies disagree: two patients in one message.
fn patients_differ(checked: &[(Vec<FieldValue>, Vec<FormProblem>)]) -> bool {
    const IDENTITY: [&str; 5] = ["birth_name", "first_names", "sex", "birth_date", "nir"];
    // Canonical values (`F` for `Femme`), then case, accents and punctuation ignored.
    let norm = |s: &str| {
        fold(s)
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect::<String>()
    };
    IDENTITY.iter().any(|key| {
        let values: Vec<String> = checked
            .iter()
            .filter_map(|(fields, _)| fields.iter().find(|f| f.key == *key))
            .map(|f| norm(&f.value))
            .filter(|v| !v.is_empty())
            .collect();
        values.windows(2).any(|w| w[0] != w[1])
    })
}
