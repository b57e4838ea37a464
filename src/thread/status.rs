//! Thread statuses and who a sender is in a thread.

use std::fmt;

use crate::address::EmailAddress;

/// Serialized as the contract spells it (`en_cours`), like `as_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Nouvelle,
    EnCours,
    Terminee,
    Annulee,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown thread status {0:?} (nouvelle, en_cours, terminee, annulee)")]
pub struct StatusError(pub String);

impl Status {
    /// The contract's spelling, used in the database and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Nouvelle => "nouvelle",
            Status::EnCours => "en_cours",
            Status::Terminee => "terminee",
            Status::Annulee => "annulee",
        }
    }

    pub fn parse(s: &str) -> Result<Status, StatusError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nouvelle" => Ok(Status::Nouvelle),
            "en_cours" => Ok(Status::EnCours),
            "terminee" => Ok(Status::Terminee),
            "annulee" => Ok(Status::Annulee),
            _ => Err(StatusError(s.to_string())),
        }
    }

    /// Terminée or annulée: nothing more happens in the thread.
    pub fn is_closed(self) -> bool {
        matches!(self, Status::Terminee | Status::Annulee)
    }

    /// For people: `nouvelle`, `en cours`, `terminée`, `annulée`.
    pub fn label_fr(self) -> &'static str {
        match self {
            Status::Nouvelle => "nouvelle",
            Status::EnCours => "en cours",
            Status::Terminee => "terminée",
            Status::Annulee => "annulée",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who wrote a message about a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The GP who opened the thread.
    Requester,
    /// The category's group mailbox.
    Group,
    /// One of the category's listed experts, writing from their own address.
    Expert,
    /// Anyone else: their mail is quarantined, never relayed.
    Other,
}

impl Role {
    /// For audit rows and logs: `requester`, `group`, `expert`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Group => "group",
            Role::Expert => "expert",
            Role::Other => "other",
        }
    }
}

/// Compares base addresses (plus-tags removed). The requester is checked first: a GP who is
/// also listed as an expert of the category is, in their own thread, the requester.
pub fn role_of(
    sender: &EmailAddress,
    requester: &EmailAddress,
    group: &EmailAddress,
    experts: &[EmailAddress],
) -> Role {
    let sender = sender.base();
    if sender == requester.base() {
        Role::Requester
    } else if sender == group.base() {
        Role::Group
    } else if experts.iter().any(|e| e.base() == sender) {
        Role::Expert
    } else {
        Role::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn status_strings_round_trip() {
        for s in [
            Status::Nouvelle,
            Status::EnCours,
            Status::Terminee,
            Status::Annulee,
        ] {
            assert_eq!(Status::parse(s.as_str()), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(Status::parse("EN_COURS"), Ok(Status::EnCours));
        for s in [
            Status::Nouvelle,
            Status::EnCours,
            Status::Terminee,
            Status::Annulee,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!(Status::parse("en cours").is_err());
        assert!(Status::Terminee.is_closed() && Status::Annulee.is_closed());
        assert!(!Status::Nouvelle.is_closed() && !Status::EnCours.is_closed());
    }

    #[test]
    fn roles() {
        let group = addr("infectio@chr-metz.mssante.fr");
        let experts = [addr("dr.ruch@chr-metz.mssante.fr")];
        let role = |sender: &str, gp: &EmailAddress| role_of(&addr(sender), gp, &group, &experts);
        let gp = addr("dr.bua@medecin.mssante.fr");
        assert_eq!(role("Dr.Bua@medecin.mssante.fr", &gp), Role::Requester);
        assert_eq!(role("dr.bua+x@medecin.mssante.fr", &gp), Role::Requester);
        assert_eq!(role("infectio@chr-metz.mssante.fr", &gp), Role::Group);
        assert_eq!(
            role("infectio+te-2026-000042@chr-metz.mssante.fr", &gp),
            Role::Group
        );
        assert_eq!(role("dr.ruch@chr-metz.mssante.fr", &gp), Role::Expert);
        assert_eq!(role("dr.autre@chr-metz.mssante.fr", &gp), Role::Other);
        assert_eq!(role("infectio@autre.mssante.fr", &gp), Role::Other);
    }
}
