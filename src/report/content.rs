//! What the compte-rendu says: the French wording, in order, as a list of blocks.
//!
//! Both renderers walk the same blocks, so the mail body and the PDF hold the same record.
//! The items follow Omnidoc's compte-rendu (the seed) and article R6316-4 of the Code de la
//! santé publique: identities of patient and professionals, date and time of the act, the
//! exchange, the consent, the acts to bill.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{ReportData, ReportPerson};

/// The document title, also used as PDF metadata.
pub(crate) const TITLE: &str = "Compte-rendu de téléexpertise";

/// One piece of the document; the renderers choose the typography.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Block {
    Title(String),
    Heading(String),
    /// A bold line, e.g. the author and time above a message.
    Strong(String),
    /// A paragraph: one logical line, wrapped by the PDF renderer.
    Line(String),
    /// An empty line.
    Blank,
}

/// `15/07/2024` in the report's zone.
pub(crate) fn date(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%d/%m/%Y").to_string()
}

/// `le 15/07/2024 à 16h04` in the report's zone, as in the seed.
pub(crate) fn le_date_a_heure(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("le %d/%m/%Y à %Hh%M")
        .to_string()
}

/// The blocks of the compte-rendu, in reading order.
pub(crate) fn blocks(d: &ReportData) -> Vec<Block> {
    let tz = d.timezone;
    let mut b = Vec::with_capacity(32 + d.form_lines.len() + d.exchanges.len() * 4);
    let realised = d.answered_at.is_some();

    b.push(Block::Title(TITLE.to_owned()));
    b.push(Block::Strong(format!("Téléexpertise {}", d.thread_id)));
    match d.answered_at {
        // R6316-4 asks for the date and time of the act: the first expert answer.
        Some(at) => b.push(Block::Line(format!(
            "Réalisée {}.",
            le_date_a_heure(at, tz)
        ))),
        None => b.push(Block::Line(
            "Non réalisée : aucune réponse d'expert.".to_owned(),
        )),
    }
    b.push(Block::Line(format!(
        "Adressée au réseau {} (catégorie {}) le {}.",
        d.network,
        d.category_name,
        date(d.requested_at, tz)
    )));
    b.push(Block::Line(format!("Statut : {}.", status_label(d))));
    if let Some(at) = d.closed_at {
        b.push(Block::Line(format!(
            "Clôturée {}.",
            le_date_a_heure(at, tz)
        )));
    }

    b.push(Block::Heading("Patient".to_owned()));
    b.push(Block::Line(format!("Patient : {}", patient_line(d))));
    if let Some(nir) = d.patient.nir.as_deref().filter(|n| !n.trim().is_empty()) {
        b.push(Block::Line(format!("NIR : {}", nir.trim())));
    }

    b.push(Block::Heading("Professionnels".to_owned()));
    b.push(Block::Line(format!(
        "Requérant : {}",
        person_line(&d.requester)
    )));
    match d.experts.as_slice() {
        [] => b.push(Block::Line("Expert : aucun (pas de réponse).".to_owned())),
        [one] => b.push(Block::Line(format!("Expert : {}", person_line(one)))),
        many => {
            b.push(Block::Line("Experts :".to_owned()));
            for e in many {
                b.push(Block::Line(format!("– {}", person_line(e))));
            }
        }
    }
    b.push(Block::Blank);
    if d.consent_confirmed {
        b.push(Block::Line(
            "Le requérant confirme le consentement exprès du patient.".to_owned(),
        ));
    } else {
        b.push(Block::Line(
            "Consentement du patient : non confirmé par le requérant.".to_owned(),
        ));
    }

    if !d.form_lines.is_empty() {
        b.push(Block::Heading("Demande".to_owned()));
        for (label, value) in &d.form_lines {
            let mut lines = normalise(value).into_iter();
            let first = lines.next().unwrap_or_default();
            b.push(Block::Line(format!("{} : {}", label.trim(), first)));
            b.extend(lines.map(line_block));
        }
    }

    b.push(Block::Heading("Échanges".to_owned()));
    if d.exchanges.is_empty() {
        b.push(Block::Line("Aucun échange.".to_owned()));
    }
    // Time order whatever order the caller used; stable, so equal times keep their order.
    let mut exchanges: Vec<_> = d.exchanges.iter().collect();
    exchanges.sort_by_key(|e| e.at);
    for (i, e) in exchanges.iter().enumerate() {
        if i > 0 {
            b.push(Block::Blank);
        }
        b.push(Block::Strong(format!(
            "{} ({}), {}",
            e.author.trim(),
            e.role.trim(),
            le_date_a_heure(e.at, tz)
        )));
        b.extend(normalise(&e.text).into_iter().map(line_block));
    }

    if !d.attachments.is_empty() {
        b.push(Block::Heading("Pièces jointes".to_owned()));
        for a in &d.attachments {
            b.push(Block::Line(format!(
                "– {} ({}, {}) — SHA-256 : {}",
                a.name,
                a.content_type,
                size(a.size),
                a.sha256
            )));
        }
    }

    b.push(Block::Heading("Facturation".to_owned()));
    if realised {
        b.push(Block::Line(
            "Actes : TE2 (expert, téléexpertise) — RQD (requérant, demande de téléexpertise)"
                .to_owned(),
        ));
    } else {
        // No answer means no act was performed: nothing to bill.
        b.push(Block::Line(
            "Actes : aucun (téléexpertise non réalisée).".to_owned(),
        ));
    }
    for a in &d.acts {
        let who = match a.doctor_rpps.as_deref() {
            Some(r) => format!("{} (RPPS {r})", a.doctor_name),
            None => a.doctor_name.clone(),
        };
        let verdict = match (&a.reason, a.billable) {
            (_, true) => "facturable".to_owned(),
            (Some(r), false) => format!("non facturable : {r}"),
            (None, false) => "non facturable".to_owned(),
        };
        b.push(Block::Line(format!(
            "– {}, {who}, {} € le {} — {verdict}",
            a.code,
            euros(a.amount_cents),
            a.day.format("%d/%m/%Y")
        )));
    }

    b.push(Block::Blank);
    b.push(Block::Line(format!(
        "Compte-rendu généré {}.",
        le_date_a_heure(d.generated_at, tz)
    )));
    b
}

fn line_block(l: String) -> Block {
    if l.trim().is_empty() {
        Block::Blank
    } else {
        Block::Line(l)
    }
}

/// Splits text into lines with CR/LF normalised, tabs expanded and other control characters
/// dropped (they would break the PDF text operators or the mail body); trailing blank lines go.
fn normalise(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .map(|l| {
            l.replace('\t', "    ")
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    while lines.first().is_some_and(|l| l.is_empty()) {
        lines.remove(0);
    }
    lines
}

fn status_label(d: &ReportData) -> String {
    let s = d.status.trim().to_lowercase();
    let auto = s.contains("auto");
    match s.as_str() {
        "annulee" | "annulée" => "annulée par le requérant".to_owned(),
        "en_cours" => "en cours".to_owned(),
        "nouvelle" => "nouvelle (sans réponse à ce jour)".to_owned(),
        _ if d.answered_at.is_none() && (auto || s.starts_with("termin")) => {
            "clôturée automatiquement sans réponse".to_owned()
        }
        _ if auto => "clôturée automatiquement".to_owned(),
        "terminee" | "terminée" => "terminée".to_owned(),
        _ => d.status.trim().to_owned(),
    }
}

/// `DUPONT Jeanne (nom d'usage : MARTIN), femme née le 23/01/1991`: birth name first, as the
/// INS identity rules want.
fn patient_line(d: &ReportData) -> String {
    let p = &d.patient;
    let mut s = format!(
        "{} {}",
        p.birth_name.trim().to_uppercase(),
        p.first_names.trim()
    );
    if let Some(used) = p
        .used_name
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty() && !u.eq_ignore_ascii_case(p.birth_name.trim()))
    {
        s.push_str(&format!(" (nom d'usage : {})", used.to_uppercase()));
    }
    let born = p.birth_date.format("%d/%m/%Y");
    match p.sex.trim().to_uppercase().as_str() {
        "F" => s.push_str(&format!(", femme née le {born}")),
        "M" => s.push_str(&format!(", homme né le {born}")),
        _ => s.push_str(&format!(", né(e) le {born}")),
    }
    s
}

/// `Dr X, Médecine interne, RPPS : 10001234567, messagerie : x@chr.mssante.fr`.
fn person_line(p: &ReportPerson) -> String {
    let mut parts = Vec::with_capacity(4);
    if let Some(name) = p.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        parts.push(name.to_owned());
    }
    if let Some(spec) = p
        .specialty
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        parts.push(spec.to_owned());
    }
    match p.rpps.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(rpps) => parts.push(format!("RPPS : {rpps}")),
        None => parts.push("RPPS : non communiqué".to_owned()),
    }
    parts.push(format!("messagerie : {}", p.address.trim()));
    parts.join(", ")
}

/// `532 octets`, `12 595 octets (12,3 Ko)`: the exact size, plus a readable one.
fn size(n: u64) -> String {
    let exact = group_thousands(n);
    let unit = if n == 1 { "octet" } else { "octets" };
    if n < 1024 {
        return format!("{exact} {unit}");
    }
    let (v, u) = if n < 1024 * 1024 {
        (n as f64 / 1024.0, "Ko")
    } else {
        (n as f64 / (1024.0 * 1024.0), "Mo")
    };
    let human = format!("{v:.1}").replace('.', ",");
    format!("{exact} {unit} ({human} {u})")
}

/// `23,00`: French decimal comma.
fn euros(cents: i64) -> String {
    format!("{},{:02}", cents / 100, (cents % 100).abs())
}

/// Groups digits by three with a no-break space, the French convention.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * 2);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{a0}');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sizes_are_french() {
        assert_eq!(size(0), "0 octets");
        assert_eq!(size(1), "1 octet");
        assert_eq!(size(532), "532 octets");
        assert_eq!(size(12_595), "12\u{a0}595 octets (12,3 Ko)");
        assert_eq!(size(3 * 1024 * 1024), "3\u{a0}145\u{a0}728 octets (3,0 Mo)");
    }

    #[test]
    fn normalise_drops_controls_and_edges() {
        assert_eq!(
            normalise("\r\n\r\na\tb\u{7}\r\n\r\nc  \n\n"),
            vec!["a    b", "", "c"]
        );
    }
}
