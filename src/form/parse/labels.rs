//! Label matching: the folded label index of a template, unlisted `Label :` lines and the lines that end a value.

use crate::form::fold::{fold, fold_with_map};
use crate::form::template::{CATEGORY_LABEL, FormTemplate};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Field(usize),
    Category,
    /// The `n`-th unlisted label.
    Unlisted(usize),
}

/// A line `Label : value` whose label is no field's: a few words (letters, spaces, `'`, `-`,
/// parentheses, `/`) before a colon at the start of the line. Sentences (`Je vous écris car :`
/// has too many words; `http://…` has no space after the colon) do not count.
pub(super) fn unlisted_label(line: &str) -> Option<(String, usize)> {
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
pub(super) enum Written {
    /// `Label : value`, or the label alone on its line.
    Explicit,
    /// `Label value`, no colon.
    Loose,
}

pub(super) struct LabelIndex {
    /// Folded labels, longest first so `Nom de naissance` wins over `Nom`.
    entries: Vec<Entry>,
}

impl LabelIndex {
    pub(super) fn new(template: &FormTemplate) -> LabelIndex {
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
    pub(super) fn match_line(&self, line: &str) -> Option<(Target, usize, Written)> {
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
pub(super) fn is_value_stop(line: &str) -> bool {
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
