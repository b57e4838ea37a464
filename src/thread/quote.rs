//! Quoted history in replies: what to cut so only the sender's new text is relayed.

/// Where quoted history starts: an attribution line (`Le … a écrit :`, possibly wrapped on two
/// lines; `On … wrote:`), `-----Message d'origine-----` / `-----Original Message-----`, or an
/// Outlook header block (`De :`/`From:` followed by `Envoyé :`/`Sent:`/`Date :`). Returns the
/// index of the first line to drop (a `____` rule just above an Outlook block included).
/// Lines quoted with `>` are not a start on their own: inline answers sit between them.
pub(crate) fn quote_start(lines: &[&str]) -> Option<usize> {
    (0..lines.len()).find_map(|i| boundary_at(lines, i))
}

fn boundary_at(lines: &[&str], i: usize) -> Option<usize> {
    let line = lines[i].trim();
    let lower = line.to_lowercase();
    let separator = [
        "message d'origine",
        "original message",
        "message original",
        "message transféré",
    ];
    if lower.starts_with("-----") && separator.iter().any(|s| lower.contains(s)) {
        return Some(i);
    }
    if attribution(lines, i) {
        return Some(i);
    }
    if is_header(&lower, &["de :", "de:", "from:", "from :"]) {
        let next = lines
            .iter()
            .skip(i + 1)
            .take(3)
            .map(|l| l.trim().to_lowercase());
        let has_date = next.clone().any(|l| {
            is_header(
                &l,
                &[
                    "envoyé :",
                    "envoyé:",
                    "envoyé le :",
                    "sent:",
                    "sent :",
                    "date :",
                    "date:",
                ],
            )
        });
        if has_date {
            let rule = i > 0
                && lines[i - 1].trim().len() >= 10
                && lines[i - 1].trim().chars().all(|c| c == '_');
            return Some(if rule { i - 1 } else { i });
        }
    }
    None
}

fn is_header(lower: &str, names: &[&str]) -> bool {
    names.iter().any(|n| lower.starts_with(n))
}

/// `Le 14/10/2024 à 10:56, Dr X <x@y.fr> a écrit :`, also wrapped as `… a` / `écrit :`.
fn attribution(lines: &[&str], i: usize) -> bool {
    let line = lines[i].trim();
    let lower = line.to_lowercase();
    if line.chars().count() > 300 {
        return false;
    }
    let joined = match lines.get(i + 1) {
        Some(next) => format!("{lower} {}", next.trim().to_lowercase()),
        None => lower.clone(),
    };
    let fr_end = |s: &str| {
        let s = s.trim_end();
        s.ends_with("a écrit :")
            || s.ends_with("a écrit:")
            || s.ends_with("a ecrit :")
            || s.ends_with("a ecrit:")
    };
    let en_end = |s: &str| s.trim_end().ends_with("wrote:") || s.trim_end().ends_with("wrote :");
    // The second line of a wrapped attribution must not be an attribution of its own.
    let next_starts = |w: &str| {
        lines
            .get(i + 1)
            .is_some_and(|n| n.trim().to_lowercase().starts_with(w))
    };
    // Clients put the time in (`à 10:56`); a sentence such as `Le 12/10 le labo a écrit :`
    // has none and stays the sender's text.
    let (one, two) = (has_time(&lower), has_time(&joined));
    if lower.starts_with("le ") {
        return (one && fr_end(&lower)) || (two && fr_end(&joined) && !next_starts("le "));
    }
    if lower.starts_with("on ") {
        return (one && en_end(&lower)) || (two && en_end(&joined) && !next_starts("on "));
    }
    false
}

/// `10:56`, `9:05`, `10h56`, `10 h 56`.
fn has_time(line: &str) -> bool {
    let c: Vec<char> = line.chars().collect();
    (1..c.len()).any(|i| {
        if !c[i - 1].is_ascii_digit() {
            return false;
        }
        let mut j = i;
        while j < c.len() && c[j] == ' ' {
            j += 1;
        }
        if j >= c.len() || !matches!(c[j], ':' | 'h') {
            return false;
        }
        j += 1;
        while j < c.len() && c[j] == ' ' {
            j += 1;
        }
        j + 1 < c.len() && c[j].is_ascii_digit() && c[j + 1].is_ascii_digit()
    })
}

/// The new text of a reply: quoted history removed, own text (inline answers included) kept.
///
/// Everything from an attribution or Outlook block down is dropped, except that an attribution
/// directly followed by `>` lines (Thunderbird-style quoting, where inline answers may sit
/// between quoted lines) only drops itself and the `>` lines. Trailing blank lines go too.
pub fn strip_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(start) = boundary_at(&lines, i) {
            if attribution(&lines, i) && start == i {
                // Skip the attribution (one or two lines), see what follows.
                let skip = if lines[i].trim_end().to_lowercase().ends_with(':') {
                    1
                } else {
                    2
                };
                let next = lines[i + skip.min(lines.len() - i)..]
                    .iter()
                    .find(|l| !l.trim().is_empty());
                if next.is_some_and(|l| l.trim_start().starts_with('>')) {
                    i += skip;
                    continue;
                }
            }
            // An Outlook block may start on the `____` rule above it, already kept.
            if start < i && kept.last() == Some(&lines[start]) {
                kept.pop();
            }
            break;
        }
        if !lines[i].trim_start().starts_with('>') {
            kept.push(lines[i]);
        }
        i += 1;
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    while kept.first().is_some_and(|l| l.trim().is_empty()) {
        kept.remove(0);
    }
    kept.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thunderbird_french_attribution() {
        let t = "Bonjour,\nPas de traitement.\n\nLe 14/10/2024 à 10:56, Dr BUA a écrit :\n> Question ?\n> Merci\n";
        assert_eq!(strip_quoted(t), "Bonjour,\nPas de traitement.");
    }

    #[test]
    fn wrapped_attribution_and_everything_after_without_quotes() {
        let t = "Vu.\nLe 14/10/2024 à 10:56, Dr JR BUA <jr.bua@medecin.mssante.fr>\na écrit :\n> x";
        assert_eq!(strip_quoted(t), "Vu.");
        let t = "Réponse.\n\nLe lun. 14 oct. 2024 à 10:56, Dr JR BUA <jr.bua@medecin.mssante.fr> a\nécrit :\n\nTexte cité sans chevrons\n";
        assert_eq!(strip_quoted(t), "Réponse.");
    }

    #[test]
    fn english_attribution() {
        let t = "Ok.\nOn Mon, 14 Oct 2024 at 10:56, Dr X <x@y.fr> wrote:\n> old";
        assert_eq!(strip_quoted(t), "Ok.");
    }

    #[test]
    fn inline_answers_are_kept() {
        let t = "Le 14/10/2024 à 10:56, Dr BUA a écrit :\n> Faut-il traiter ?\nNon.\n> Faut-il dépister ?\nOui, PCR chlamydia et gonocoque.\n\n> Merci\n\n";
        assert_eq!(strip_quoted(t), "Non.\nOui, PCR chlamydia et gonocoque.");
    }

    #[test]
    fn outlook_blocks() {
        let t = "Avis : pas de traitement.\n\n________________________________\nDe : Téléexpertise <teleexpertise@chr-metz.mssante.fr>\nEnvoyé : lundi 14 octobre 2024 10:56\nÀ : infectio\nObjet : [TE-2026-000042] Nouvelle demande\n\nBonjour";
        assert_eq!(strip_quoted(t), "Avis : pas de traitement.");
        let t = "Vu.\nFrom: X <x@y.fr>\nSent: Monday\nTo: y\n\nold";
        assert_eq!(strip_quoted(t), "Vu.");
        let t = "Vu.\n-----Message d'origine-----\nDe : x\nold";
        assert_eq!(strip_quoted(t), "Vu.");
        let t = "Seen.\n\n-----Original Message-----\nFrom: x\nold";
        assert_eq!(strip_quoted(t), "Seen.");
    }

    #[test]
    fn own_text_is_untouched() {
        let t = "De : mon point de vue, il faut traiter.\nLe patient a écrit : rien.\nLe 12/10 le labo a écrit :\nE. coli BLSE\n\nCordialement\n-- \nDr Ruch\n\n\n";
        assert_eq!(
            strip_quoted(t),
            "De : mon point de vue, il faut traiter.\nLe patient a écrit : rien.\nLe 12/10 le labo a écrit :\nE. coli BLSE\n\nCordialement\n-- \nDr Ruch"
        );
        let t = "Vu.\n\n-------- Message transféré --------\nSujet : x";
        assert_eq!(strip_quoted(t), "Vu.");
        assert!(has_time("Le 14 oct. 2024 à 10 h 56, X a écrit :"));
        let t = "Vu.\nLe lun. 14 oct. 2024\nà 10:56, X <x@y.fr> a écrit :\n> old";
        assert_eq!(strip_quoted(t), "Vu.");
        assert!(has_time("On Mon, Oct 14, 2024 at 9:05 AM X wrote:"));
        assert!(!has_time("Le 12/10 le labo a écrit :"));
    }
}
