//! Who is who in the record: the ids (document OIDs, RPPS, NIR, COG) and names the CDA header
//! and the XDM metadata both derive from the report data, so the two can never disagree.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use super::{ReportData, ReportPerson};

/// Root of the document ids: `2.25.<decimal>` is the OID arc for UUIDs (ITU-T X.667), so the
/// gateway needs no OID of its own to give each compte-rendu a unique id.
const UUID_ARC: &str = "2.25";

/// A 128-bit value derived from `parts`, written as a `2.25.` OID. Stable for the same input,
/// so the set id of one thread is the same whenever its compte-rendu is produced.
pub(crate) fn uuid_oid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    // RFC 4122 version 8 (custom) and variant bits, so the value is a well-formed UUID.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("{UUID_ARC}.{}", u128::from_be_bytes(b))
}

/// `20240715160400+0200`: HL7 TS with the gateway zone's offset.
pub(crate) fn hl7_local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%Y%m%d%H%M%S%z").to_string()
}

/// The NIR without spaces, when one was given.
pub(crate) fn nir_digits(d: &ReportData) -> Option<String> {
    d.patient
        .nir
        .as_deref()
        .map(|n| n.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .filter(|n| n.len() == 15)
}

/// The COG code of the birth place, from a permanent NIR (first digit 1 or 2; 3, 4, 7 and 8
/// are temporary numbers whose digits locate nothing).
pub(crate) fn birth_cog(d: &ReportData) -> Option<String> {
    let n = nir_digits(d)?;
    matches!(n.as_bytes().first(), Some(b'1' | b'2')).then(|| n[5..10].to_owned())
}

/// `Dr Yvon RUCH` → (`Yvon`, `RUCH`): the family name is the words in capitals, as French
/// certificates write it; without one, the whole name is the family name.
pub(crate) fn split_name(full: &str) -> (String, String) {
    let words: Vec<&str> = full
        .split_whitespace()
        .filter(|w| {
            !matches!(
                w.trim_end_matches('.').to_lowercase().as_str(),
                "dr" | "pr" | "docteur" | "professeur"
            )
        })
        .collect();
    let is_upper =
        |w: &&str| w.chars().any(char::is_alphabetic) && !w.chars().any(char::is_lowercase);
    let family: Vec<&str> = words.iter().copied().filter(is_upper).collect();
    let given: Vec<&str> = words.iter().copied().filter(|w| !is_upper(w)).collect();
    if family.is_empty() || given.is_empty() {
        return (String::new(), words.join(" "));
    }
    (given.join(" "), family.join(" "))
}

/// The person's name for the header, else the mail address (never empty).
pub(crate) fn display_name(p: &ReportPerson) -> String {
    p.name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(p.address.trim())
        .to_owned()
}

pub(crate) fn rpps_id(p: &ReportPerson) -> Option<String> {
    p.rpps
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| format!("8{r}"))
}

/// The signing expert: the last one who answered (the one who closed, usually).
pub(crate) fn signer(d: &ReportData) -> Option<&ReportPerson> {
    d.experts
        .iter()
        .rev()
        .find(|e| e.rpps.is_some())
        .or(d.experts.last())
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn names_split_on_capitals() {
        assert_eq!(split_name("Dr Yvon RUCH"), ("Yvon".into(), "RUCH".into()));
        assert_eq!(
            split_name("Jean-Éric DE LA TOUR"),
            ("Jean-Éric".into(), "DE LA TOUR".into())
        );
        assert_eq!(split_name("infectio"), (String::new(), "infectio".into()));
    }

    #[test]
    fn document_ids_are_uuid_oids() {
        let a = uuid_oid(&["x", "TE-2026-000001"]);
        assert!(a.starts_with("2.25."));
        assert_eq!(a, uuid_oid(&["x", "TE-2026-000001"]));
        assert_ne!(a, uuid_oid(&["x", "TE-2026-000002"]));
        assert!(a[5..].chars().all(|c| c.is_ascii_digit()));
    }
}
