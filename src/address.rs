//! E-mail addresses as the gateway compares them: parsed once, lowercased, plus-tag aware.

use std::fmt;

/// An address `local@domain`, lowercased. Parsing checks the shape only, which is all the
/// gateway needs to compare senders, signers and recipients.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an e-mail address: {0:?}")]
pub struct AddressError(pub String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let s = input
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        let err = || AddressError(input.to_string());
        let (local, domain) = s.rsplit_once('@').ok_or_else(err)?;
        let bad = |p: &str| {
            p.is_empty()
                || p.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"@\\".contains(c))
        };
        if bad(local) || bad(domain) || !domain.contains('.') && domain != "localhost" {
            return Err(err());
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    /// The part after `+` in the local part, if any (`teleexpertise+infectio@…` → `infectio`).
    pub fn plus_tag(&self) -> Option<&str> {
        self.local()
            .split_once('+')
            .map(|(_, t)| t)
            .filter(|t| !t.is_empty())
    }

    /// The address without its plus-tag.
    pub fn base(&self) -> EmailAddress {
        let local = self
            .local()
            .split_once('+')
            .map(|(l, _)| l)
            .unwrap_or(self.local());
        EmailAddress(format!("{local}@{}", self.domain()))
    }

    /// The same mailbox with a plus-tag (`local+tag@domain`).
    pub fn with_tag(&self, tag: &str) -> EmailAddress {
        let base = self.base();
        EmailAddress(format!(
            "{}+{}@{}",
            base.local(),
            tag.to_lowercase(),
            base.domain()
        ))
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_lowercases() {
        let a = EmailAddress::parse(" <Dr.Ruch@CHR-Metz.mssante.fr> ").unwrap();
        assert_eq!(a.as_str(), "dr.ruch@chr-metz.mssante.fr");
        assert_eq!(a.local(), "dr.ruch");
        assert_eq!(a.domain(), "chr-metz.mssante.fr");
    }

    #[test]
    fn plus_tags() {
        let a = EmailAddress::parse("teleexpertise+TE-2026-000042@x.fr").unwrap();
        assert_eq!(a.plus_tag(), Some("te-2026-000042"));
        assert_eq!(a.base().as_str(), "teleexpertise@x.fr");
        assert_eq!(
            a.base().with_tag("infectio").as_str(),
            "teleexpertise+infectio@x.fr"
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "x", "@x.fr", "a@", "a b@x.fr", "a@b@c.fr", "a@nodot"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
