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

use chrono::{Datelike, NaiveDate};

use super::fold::{fold, fold_with_map};
use super::nir::{Nir, NirSex};
use super::request::Sex;
use super::template::{CATEGORY_LABEL, FieldKind, FieldSpec, FormTemplate};
use super::{FieldValue, FormProblem, ParsedForm};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Field(usize),
    Category,
    /// The `n`-th unlisted label.
    Unlisted(usize),
}

/// A line `Label : value` whose label is no field's: a few words (letters, spaces, `'`, `-`,
/// parentheses, `/`) before a colon at the start of the line. Sentences (`Je vous écris car :`
/// has too many words; `http://…` has no space after the colon) do not count.
fn unlisted_label(line: &str) -> Option<(String, usize)> {
    let colon = line.find([':', '：'])?;
    let label = line[..colon].trim();
    let after = &line[colon..];
    let sep = after.chars().next().map_or(1, char::len_utf8);
    if !(after.len() == sep || after[sep..].starts_with([' ', '\t'])) {
        return None;
    }
    let words = label.split_whitespace().count();
    let ok_chars = label
        .chars()
        .all(|c| c.is_alphabetic() || " '’-()/".contains(c));
    let starts = label.chars().next().is_some_and(char::is_alphabetic);
    (starts && ok_chars && (1..=5).contains(&words) && label.chars().count() <= 40)
        .then(|| (label.to_string(), colon + sep))
}

struct Entry {
    label: Vec<char>,
    target: Target,
    /// May be followed by its value without a colon.
    loose: bool,
}

/// How a label line was written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    /// `Label : value`, or the label alone on its line.
    Explicit,
    /// `Label value`, no colon.
    Loose,
}

struct LabelIndex {
    /// Folded labels, longest first so `Nom de naissance` wins over `Nom`.
    entries: Vec<Entry>,
}

impl LabelIndex {
    fn new(template: &FormTemplate) -> LabelIndex {
        let mut entries: Vec<Entry> = template
            .fields
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                f.labels().enumerate().map(move |(n, l)| {
                    let label: Vec<char> = fold(l).chars().collect();
                    // Without a colon, only a main label or a several-word alias: a one-word
                    // alias (`Terrain`, `Résultats`) starts too many sentences.
                    let loose = n == 0 || label.contains(&' ');
                    Entry {
                        label,
                        target: Target::Field(i),
                        loose,
                    }
                })
            })
            .collect();
        entries.push(Entry {
            label: fold(CATEGORY_LABEL).chars().collect(),
            target: Target::Category,
            loose: true,
        });
        entries.retain(|e| !e.label.is_empty());
        entries.sort_by_key(|e| std::cmp::Reverse(e.label.len()));
        LabelIndex { entries }
    }

    /// A known label at the start of `line`: which one, and the byte offset where its value starts.
    fn match_line(&self, line: &str) -> Option<(Target, usize, Written)> {
        let f = fold_with_map(line);
        let c = &f.chars;
        // List bullets GPs put in front of fields.
        let mut off = 0;
        if c.len() > 1 && matches!(c[0], '-' | '•' | '–' | '·') && c[1] == ' ' {
            off = 2;
        }
        for Entry {
            label,
            target,
            loose,
        } in &self.entries
        {
            let p = off + label.len();
            if c.len() < p || c[off..p] != label[..] {
                continue;
            }
            if p < c.len() && c[p].is_alphanumeric() {
                continue; // `Nomination` is not `Nom`.
            }
            let mut q = p;
            let skip_spaces = |q: &mut usize| {
                while *q < c.len() && c[*q] == ' ' {
                    *q += 1;
                }
            };
            skip_spaces(&mut q);
            // A hint or remark in parentheses before the colon: `Sexe (F/M) :`.
            if q < c.len()
                && c[q] == '('
                && let Some(close) = c[q..].iter().position(|&x| x == ')')
            {
                let mut r = q + close + 1;
                skip_spaces(&mut r);
                if r < c.len() && matches!(c[r], ':' | '：') {
                    q = r;
                }
            }
            if q < c.len() && matches!(c[q], ':' | '：') {
                return Some((*target, f.ends[q], Written::Explicit));
            }
            if p == c.len() {
                return Some((*target, line.len(), Written::Explicit)); // The label alone.
            }
            if !loose {
                continue;
            }
            // Without a colon the rest is the value, unless it holds a `Label :` of its own
            // (`Nom du germe : …` is not the `Nom` field).
            let rest: String = c[p..].iter().collect();
            if rest.contains(" :") || rest.contains(": ") || rest.ends_with(':') {
                continue;
            }
            // `Sexe - F`, `Fonction rénale = 30-60`: a dash or equals sign as separator.
            // `ends[v]` is just after the space at `v`, where the value starts.
            let mut v = p;
            if p + 2 < c.len() && matches!(c[p + 1], '-' | '–' | '=') && c[p + 2] == ' ' {
                v = p + 2;
            }
            return Some((*target, f.ends[v], Written::Loose));
        }
        None
    }
}

/// A line that ends the value being read: signature separator, closing formula, quoted line,
/// the blank form's header.
fn is_value_stop(line: &str) -> bool {
    if line.trim_end() == "--" {
        return true;
    }
    // A quoted line, but not a value such as `> 60` (renal function) on its own line.
    if let Some(rest) = line.trim_start().strip_prefix('>')
        && !rest.trim_start().starts_with(|c: char| c.is_ascii_digit())
    {
        return true;
    }
    let folded = fold(line);
    // The header line of our own blank form, pasted with it.
    if folded.starts_with("les champs marques") {
        return true;
    }
    let folded = folded.trim_end_matches(['.', ',', '!', ' ']);
    const CLOSINGS: [&str; 13] = [
        "cordialement",
        "bien cordialement",
        "tres cordialement",
        "confraternellement",
        "bien confraternellement",
        "tres confraternellement",
        "salutations confraternelles",
        "mes salutations confraternelles",
        "bien a vous",
        "bien a toi",
        "sinceres salutations",
        "cdlt",
        "bien confraternellement votre",
    ];
    CLOSINGS.contains(&folded)
}

/// One occurrence of the form in the message: a value (or `None`, not seen) per template field.
type FormCopy = Vec<Option<String>>;

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

fn problem(spec: &FieldSpec, message: String) -> FormProblem {
    FormProblem {
        key: spec.key.clone(),
        label: spec.label.clone(),
        message: format!("{} : {message}", spec.label),
    }
}

/// Checks every field of one copy; returns the understood values (canonical where the kind has
/// a canonical spelling, as written otherwise) and the problems.
fn check_copy(
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
