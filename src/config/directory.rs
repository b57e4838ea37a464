//! `[directory]`: the national directory extraction and the professions allowed to request or answer.

use std::path::PathBuf;

use serde::Deserialize;

/// `[directory]`: the national directory and who may request or answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    /// An extraction re-imported by the daemon whenever it changes (size or modification time).
    pub file: Option<PathBuf>,
    /// How often the daemon looks at `file`.
    #[serde(default = "default_directory_check_seconds")]
    pub check_seconds: u64,
    /// Quarantine as `directory_mismatch` a signer whose certificate's RPPS is not the
    /// directory's for that address (false: process it with an audit warning).
    #[serde(default)]
    pub require_match: bool,
    /// Professions (`Libellé Profession`, without case, accents or plural) that may request.
    #[serde(default = "default_requester_professions")]
    pub requester_professions: Vec<String>,
    /// Professions that may answer.
    #[serde(default = "default_expert_professions")]
    pub expert_professions: Vec<String>,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            file: None,
            check_seconds: default_directory_check_seconds(),
            require_match: false,
            requester_professions: default_requester_professions(),
            expert_professions: default_expert_professions(),
        }
    }
}

fn default_directory_check_seconds() -> u64 {
    300
}
fn default_requester_professions() -> Vec<String> {
    [
        "Médecin",
        "Sage-Femme",
        "Infirmier",
        "Masseur-Kinésithérapeute",
        "Orthoptiste",
        "Orthophoniste",
    ]
    .map(String::from)
    .to_vec()
}
fn default_expert_professions() -> Vec<String> {
    ["Médecin", "Sage-Femme"].map(String::from).to_vec()
}
