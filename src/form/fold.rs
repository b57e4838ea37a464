//! Label folding: the comparison key that makes `ÉLÉMENTS CLINIQUES`, `Eléments cliniques` and
//! `éléments  cliniques` the same label, with a map back to the original text.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// A folded string and, for each folded char, the byte offset just after the original char
/// it came from; so a match on the folded text can be cut out of the original.
pub(crate) struct Folded {
    pub chars: Vec<char>,
    pub ends: Vec<usize>,
}

/// Lowercase, accents removed, typographic apostrophes made plain, `*` dropped, whitespace runs
/// collapsed to one space, `(s)` and `(e)` removed (so `Prénom(s)` = `Prénom`, `Né(e)` = `Né`).
pub(crate) fn fold_with_map(s: &str) -> Folded {
    let mut chars = Vec::with_capacity(s.len());
    let mut ends = Vec::with_capacity(s.len());
    for (i, c) in s.char_indices() {
        let end = i + c.len_utf8();
        if c.is_whitespace() {
            // Collapse runs and drop leading whitespace.
            if chars.last().is_some_and(|&p: &char| p != ' ') {
                chars.push(' ');
                ends.push(end);
            }
            continue;
        }
        let c = match c {
            '\u{2019}' | '\u{2018}' | '`' | '\u{b4}' => '\'',
            '*' => continue,
            // `œ` and `æ` do not decompose; spell them out as GPs type them.
            'œ' | 'Œ' => {
                chars.extend(['o', 'e']);
                ends.extend([end, end]);
                continue;
            }
            _ => c,
        };
        for d in c.nfd().filter(|d| !is_combining_mark(*d)) {
            for l in d.to_lowercase() {
                chars.push(l);
                ends.push(end);
            }
        }
    }
    // Remove `(s)` / `(e)`, then the space it may leave doubled.
    let mut out = Folded {
        chars: Vec::with_capacity(chars.len()),
        ends: Vec::with_capacity(ends.len()),
    };
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '('
            && i + 2 < chars.len()
            && matches!(chars[i + 1], 's' | 'e')
            && chars[i + 2] == ')'
        {
            i += 3;
            continue;
        }
        if chars[i] == ' ' && out.chars.last().is_some_and(|&p| p == ' ') {
            i += 1;
            continue;
        }
        out.chars.push(chars[i]);
        out.ends.push(ends[i]);
        i += 1;
    }
    while out.chars.last() == Some(&' ') {
        out.chars.pop();
        out.ends.pop();
    }
    out
}

/// The folded form as a string, for comparing labels and values.
pub(crate) fn fold(s: &str) -> String {
    fold_with_map(s).chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_spacing_and_plural_marks() {
        assert_eq!(fold("  ÉLÉMENTS   cliniques "), "elements cliniques");
        assert_eq!(fold("Eléments cliniques"), "elements cliniques");
        assert_eq!(fold("Prénom(s)"), "prenom");
        assert_eq!(fold("Né(e) le"), "ne le");
        assert_eq!(fold("Nom d’usage"), "nom d'usage");
        assert_eq!(fold("Sexe *"), "sexe");
        assert_eq!(fold("Sœur"), "soeur");
    }

    #[test]
    fn map_points_back_to_original() {
        let s = "Né(e) le : 1/2/1990";
        let f = fold_with_map(s);
        let folded: String = f.chars.iter().collect();
        assert!(folded.starts_with("ne le"));
        // "ne le" ends after the "e" of "le" in the original.
        assert_eq!(&s[..f.ends[4]], "Né(e) le");
    }
}
