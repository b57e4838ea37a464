//! The NIR (numéro d'inscription au répertoire, the French social security number): parsed once
//! into a type that can only hold a well-formed number with a correct key.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A NIR with a verified key: 13 characters (digits, `2A`/`2B` for Corsica) and a 2-digit key.
/// Stored without spaces. No `Display`: it is patient data and must not reach a log by accident;
/// use [`Nir::formatted`] where showing it is intended.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Nir(String);

/// Why a NIR was refused. Messages are French and carry no part of the number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NirError {
    #[error("le NIR doit comporter 13 caractères suivis d'une clé de 2 chiffres (15 en tout)")]
    Length,
    #[error("le NIR ne doit contenir que des chiffres (et 2A/2B pour la Corse)")]
    Characters,
    #[error("le premier chiffre du NIR doit être 1, 2, 3, 4, 7 ou 8")]
    SexDigit,
    #[error("la clé du NIR ne correspond pas au numéro (vérifiez chaque chiffre)")]
    Key,
}

/// The sex the first digit of a NIR denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NirSex {
    Male,
    Female,
}

impl Nir {
    /// Accepts spaces (and non-breaking spaces, dots, dashes) between groups, as printed on a
    /// carte Vitale or typed by hand.
    pub fn parse(input: &str) -> Result<Nir, NirError> {
        let s: String = input
            .chars()
            .filter(|c| !(c.is_whitespace() || *c == '.' || *c == '-'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if s.chars().count() != 15 {
            return Err(NirError::Length);
        }
        let b = s.as_bytes();
        let digits_ok = b.iter().enumerate().all(|(i, c)| {
            c.is_ascii_digit() || (i == 6 && (*c == b'A' || *c == b'B') && b[5] == b'2')
        });
        if !digits_ok {
            return Err(NirError::Characters);
        }
        if !matches!(b[0], b'1' | b'2' | b'3' | b'4' | b'7' | b'8') {
            return Err(NirError::SexDigit);
        }
        // Corsica: 2A counts as 19 and 2B as 18 for the key.
        let numeric = match &s[5..7] {
            "2A" => format!("{}19{}", &s[..5], &s[7..13]),
            "2B" => format!("{}18{}", &s[..5], &s[7..13]),
            _ => s[..13].to_string(),
        };
        let n: u64 = numeric.parse().map_err(|_| NirError::Characters)?;
        let key: u64 = s[13..].parse().map_err(|_| NirError::Characters)?;
        if key != 97 - n % 97 {
            return Err(NirError::Key);
        }
        Ok(Nir(s))
    }

    /// The key a 13-character NIR body should have (for tests and help messages).
    pub fn key_for(body: &str) -> Option<u8> {
        let body: String = body
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        if body.len() != 13 {
            return None;
        }
        let numeric = match body.get(5..7)? {
            "2A" => format!("{}19{}", &body[..5], &body[7..]),
            "2B" => format!("{}18{}", &body[..5], &body[7..]),
            _ => body.clone(),
        };
        let n: u64 = numeric.parse().ok()?;
        u8::try_from(97 - n % 97).ok()
    }

    /// The 15 characters without spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Grouped as on a carte Vitale: `2 91 01 57 463 123 45`.
    pub fn formatted(&self) -> String {
        let s = &self.0;
        format!(
            "{} {} {} {} {} {} {}",
            &s[0..1],
            &s[1..3],
            &s[3..5],
            &s[5..7],
            &s[7..10],
            &s[10..13],
            &s[13..15]
        )
    }

    /// 1, 3, 7 denote a man; 2, 4, 8 a woman (3/4 and 7/8 are temporary numbers).
    pub fn sex(&self) -> NirSex {
        match self.0.as_bytes()[0] {
            b'1' | b'3' | b'7' => NirSex::Male,
            _ => NirSex::Female,
        }
    }

    /// The last two digits of the birth year.
    pub fn birth_year_2(&self) -> u32 {
        self.0[1..3].parse().unwrap_or(0)
    }

    /// The birth month, when the number gives one (20–42 and 50+ stand for an unknown month).
    pub fn birth_month(&self) -> Option<u32> {
        self.0[3..5].parse().ok().filter(|m| (1..=12).contains(m))
    }
}

impl fmt::Debug for Nir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nir(<redacted>)")
    }
}

impl TryFrom<String> for Nir {
    type Error = NirError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Nir::parse(&s)
    }
}

impl From<Nir> for String {
    fn from(n: Nir) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_key(body: &str) -> String {
        format!("{body}{:02}", Nir::key_for(body).unwrap())
    }

    #[test]
    fn key_is_97_minus_mod() {
        // 1 55 08 75 123 456: n mod 97 computed by hand in the assertion.
        let body = "1550875123456";
        let n: u64 = body.parse().unwrap();
        assert_eq!(u64::from(Nir::key_for(body).unwrap()), 97 - n % 97);
        let nir = Nir::parse(&with_key(body)).unwrap();
        assert_eq!(nir.sex(), NirSex::Male);
        assert_eq!(nir.birth_year_2(), 55);
        assert_eq!(nir.birth_month(), Some(8));
    }

    #[test]
    fn spaces_allowed_and_formatted() {
        let full = with_key("2910157463123");
        let spaced = format!(
            "{} {} {} {} {} {} {}",
            &full[0..1],
            &full[1..3],
            &full[3..5],
            &full[5..7],
            &full[7..10],
            &full[10..13],
            &full[13..]
        );
        let nir = Nir::parse(&spaced).unwrap();
        assert_eq!(nir.as_str(), full);
        assert_eq!(nir.formatted(), spaced);
        assert_eq!(nir.sex(), NirSex::Female);
    }

    #[test]
    fn corsica() {
        // 2A counts as 19, 2B as 18.
        let n19: u64 = "1800119123456".parse().unwrap();
        let key = 97 - n19 % 97;
        let nir = Nir::parse(&format!("180012A123456{key:02}")).unwrap();
        assert_eq!(nir.as_str(), format!("180012A123456{key:02}"));
        let n18: u64 = "2800118123456".parse().unwrap();
        assert!(Nir::parse(&format!("280012b123456{:02}", 97 - n18 % 97)).is_ok());
        // The 19-based key does not fit 2B.
        assert_eq!(
            Nir::parse(&format!("180012B123456{key:02}")),
            Err(NirError::Key)
        );
    }

    #[test]
    fn refusals() {
        let good = with_key("1550875123456");
        let mut bad_key = good.clone();
        let last = bad_key.pop().unwrap();
        bad_key.push(if last == '0' { '1' } else { '0' });
        assert_eq!(Nir::parse(&bad_key), Err(NirError::Key));
        assert_eq!(Nir::parse("15508751234"), Err(NirError::Length));
        assert_eq!(Nir::parse("1550875X2345678"), Err(NirError::Characters));
        assert_eq!(
            Nir::parse(&with_key("5550875123456")),
            Err(NirError::SexDigit)
        );
        // Temporary numbers (7/8) are accepted.
        assert!(Nir::parse(&with_key("7550875123456")).is_ok());
    }

    #[test]
    fn debug_is_redacted_and_serde_checks() {
        let nir = Nir::parse(&with_key("1550875123456")).unwrap();
        assert_eq!(format!("{nir:?}"), "Nir(<redacted>)");
        let json = serde_json::to_string(&nir).unwrap();
        assert_eq!(serde_json::from_str::<Nir>(&json).unwrap(), nir);
        assert!(
            serde_json::from_str::<Nir>("\"155087512345600\"").is_err()
                || Nir::key_for("1550875123456") == Some(0)
        );
    }
}
