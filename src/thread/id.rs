//! Thread ids (`TE-2026-000042`) and the subjects that carry them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `TE-<year>-<6 digits>`: the year the thread was opened and its rank in that year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ThreadId {
    pub year: i32,
    pub seq: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a thread id (TE-yyyy-nnnnnn): {0:?}")]
pub struct ThreadIdError(pub String);

impl ThreadId {
    pub fn new(year: i32, seq: u32) -> ThreadId {
        ThreadId { year, seq }
    }

    /// `te-2026-000042`: the plus-tag of the `Reply-To` address.
    pub fn token(&self) -> String {
        self.to_string().to_lowercase()
    }

    /// `TE-2026-000042` or `te-2026-000042` (any case). The rank has 6 digits, more only once a
    /// year passes a million threads.
    pub fn parse(s: &str) -> Result<ThreadId, ThreadIdError> {
        let err = || ThreadIdError(s.to_string());
        let t = s.trim();
        let rest = t
            .get(..3)
            .filter(|p| p.eq_ignore_ascii_case("te-"))
            .map(|_| &t[3..])
            .ok_or_else(err)?;
        let (year, seq) = rest.split_once('-').ok_or_else(err)?;
        let digits = |p: &str, min: usize, max: usize| {
            (min..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(year, 4, 4) || !digits(seq, 6, 9) {
            return Err(err());
        }
        Ok(ThreadId {
            year: year.parse().map_err(|_| err())?,
            seq: seq.parse().map_err(|_| err())?,
        })
    }

    /// The first `[TE-…]` token in a subject (`RE: [TE-2026-000042] Réponse — …`).
    pub fn from_subject(subject: &str) -> Option<ThreadId> {
        subject
            .match_indices('[')
            .filter_map(|(i, _)| {
                let rest = &subject[i + 1..];
                rest.find(']')
                    .and_then(|j| ThreadId::parse(&rest[..j]).ok())
            })
            .next()
    }

    /// The plus-tag of an address (`te-2026-000042`), as `EmailAddress::plus_tag` gives it.
    pub fn from_plus_tag(tag: &str) -> Option<ThreadId> {
        ThreadId::parse(tag).ok()
    }
}

impl fmt::Display for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TE-{:04}-{:06}", self.year, self.seq)
    }
}

impl FromStr for ThreadId {
    type Err = ThreadIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ThreadId::parse(s)
    }
}

impl TryFrom<String> for ThreadId {
    type Error = ThreadIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ThreadId::parse(&s)
    }
}

impl From<ThreadId> for String {
    fn from(id: ThreadId) -> String {
        id.to_string()
    }
}

/// `[TE-2026-000042] Nouvelle demande — Maladies infectieuses`. Takes no patient data by
/// construction: subjects travel in clear headers.
pub fn subject(id: &ThreadId, category_name: &str, word: &str) -> String {
    format!("[{id}] {word} — {category_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_token_parse() {
        let id = ThreadId::new(2026, 42);
        assert_eq!(id.to_string(), "TE-2026-000042");
        assert_eq!(id.token(), "te-2026-000042");
        assert_eq!(ThreadId::parse("TE-2026-000042"), Ok(id));
        assert_eq!(ThreadId::parse("te-2026-000042"), Ok(id));
        assert_eq!("Te-2026-000042".parse::<ThreadId>(), Ok(id));
        assert_eq!(
            ThreadId::parse("TE-2026-1234567").map(|i| i.seq),
            Ok(1_234_567)
        );
        for bad in [
            "",
            "TE-26-000042",
            "TE-2026-42",
            "TX-2026-000042",
            "TE-2026-00004a",
            "TE2026000042",
            "TÉ-2026-000042",
        ] {
            assert!(ThreadId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn from_subject_and_tag() {
        let id = ThreadId::new(2026, 42);
        assert_eq!(
            ThreadId::from_subject("RE: [TE-2026-000042] Réponse — Maladies infectieuses"),
            Some(id)
        );
        assert_eq!(
            ThreadId::from_subject("TR: [ext] [te-2026-000042] x"),
            Some(id)
        );
        assert_eq!(
            ThreadId::from_subject("TE-2026-000042 without brackets"),
            None
        );
        assert_eq!(ThreadId::from_subject("[TE-2026-000042"), None);
        assert_eq!(ThreadId::from_plus_tag("te-2026-000042"), Some(id));
        assert_eq!(ThreadId::from_plus_tag("infectio"), None);
    }

    #[test]
    fn subject_line() {
        assert_eq!(
            subject(
                &ThreadId::new(2026, 42),
                "Maladies infectieuses",
                "Nouvelle demande"
            ),
            "[TE-2026-000042] Nouvelle demande — Maladies infectieuses"
        );
    }

    #[test]
    fn serde_as_string() {
        let id = ThreadId::new(2026, 42);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"TE-2026-000042\"");
        assert_eq!(
            serde_json::from_str::<ThreadId>("\"te-2026-000042\"").unwrap(),
            id
        );
    }
}
