//! The closed set of reasons a message is quarantined, with their codes for the admin and
//! their explanations for the sender.

use crate::smime::RejectReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The S/MIME layer refused it: who sent it is not proven.
    Smime(RejectReason),
    Malformed,
    Oversized,
    /// An automatic reply, bounce or list message (RFC 3834): never answered.
    Automatic,
    /// The gateway's own mail came back.
    Loop,
    /// A message about a thread from someone who may not post in it.
    NotAuthorized,
    /// A thread token that names no thread.
    UnknownThread,
    /// A bug met this message; it is kept and can be reprocessed once fixed.
    ProcessingError,
    /// The signer's certificate carries another RPPS than the directory's for that address
    /// (`directory.require_match`).
    DirectoryMismatch,
}

impl Reason {
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Smime(r) => r.code(),
            Reason::Malformed => "malformed",
            Reason::Oversized => "oversized",
            Reason::Automatic => "automatic",
            Reason::Loop => "loop",
            Reason::NotAuthorized => "not_authorized",
            Reason::UnknownThread => "unknown_thread",
            Reason::ProcessingError => "processing_error",
            Reason::DirectoryMismatch => "directory_mismatch",
        }
    }

    pub fn parse(code: &str) -> Option<Reason> {
        Some(match code {
            "malformed" => Reason::Malformed,
            "oversized" => Reason::Oversized,
            "automatic" => Reason::Automatic,
            "loop" => Reason::Loop,
            "not_authorized" => Reason::NotAuthorized,
            "unknown_thread" => Reason::UnknownThread,
            "processing_error" => Reason::ProcessingError,
            "directory_mismatch" => Reason::DirectoryMismatch,
            other => Reason::Smime(RejectReason::parse(other)?),
        })
    }

    /// A sentence for the sender, in French.
    pub fn explanation_fr(&self) -> &'static str {
        match self {
            Reason::Smime(r) => r.explanation_fr(),
            Reason::Malformed => "Le message n'a pas pu être lu : sa structure est invalide.",
            Reason::Oversized => {
                "Le message dépasse la taille maximale acceptée par la passerelle."
            }
            Reason::Automatic => "Les réponses automatiques ne sont pas traitées.",
            Reason::Loop => "Le message est revenu à la passerelle qui l'a envoyé.",
            Reason::NotAuthorized => {
                "Vous ne participez pas à cette téléexpertise : votre message n'a pas été transmis."
            }
            Reason::UnknownThread => "La référence de téléexpertise citée n'existe pas.",
            Reason::ProcessingError => {
                "Une erreur interne a empêché le traitement ; l'équipe informatique est prévenue."
            }
            Reason::DirectoryMismatch => {
                "Le numéro RPPS de votre certificat n'est pas celui que l'annuaire santé donne pour votre adresse."
            }
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}
