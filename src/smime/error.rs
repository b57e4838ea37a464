//! S/MIME outcomes: why an incoming message is refused (`Rejection`), and what can go wrong
//! loading keys or protecting outgoing mail (`SmimeError`).

use std::path::PathBuf;

/// Why an incoming message was refused. The closed set of quarantine reason codes.
///
/// Listed in the order `authenticate` decides them: the first that applies wins (see
/// `SmimeEngine::authenticate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Malformed,
    CannotDecrypt,
    Unsigned,
    Tampered,
    BadSignature,
    Untrusted,
    Expired,
    Revoked,
    WrongUsage,
    /// An RSA key below `smime.min_rsa_bits`, or an EC key below 256 bits.
    WeakKey,
    FromMismatch,
    NotEncrypted,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::Malformed,
        RejectReason::CannotDecrypt,
        RejectReason::Unsigned,
        RejectReason::Tampered,
        RejectReason::BadSignature,
        RejectReason::Untrusted,
        RejectReason::Expired,
        RejectReason::Revoked,
        RejectReason::WrongUsage,
        RejectReason::WeakKey,
        RejectReason::FromMismatch,
        RejectReason::NotEncrypted,
    ];

    /// Stable code stored in the database and shown by `quarantine list`.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::Untrusted => "untrusted",
            RejectReason::Expired => "expired",
            RejectReason::Revoked => "revoked",
            RejectReason::WrongUsage => "wrong_usage",
            RejectReason::WeakKey => "weak_key",
            RejectReason::FromMismatch => "from_mismatch",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Tampered => "tampered",
            RejectReason::Unsigned => "unsigned",
            RejectReason::NotEncrypted => "not_encrypted",
            RejectReason::CannotDecrypt => "cannot_decrypt",
            RejectReason::Malformed => "malformed",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// A sentence for the sender: what is wrong and what to do about it.
    pub fn explanation_fr(&self) -> &'static str {
        match self {
            RejectReason::Untrusted => {
                "Votre certificat de signature n'est pas délivré par une autorité de confiance \
                 reconnue par la passerelle : signez votre message avec votre certificat MSSanté \
                 (IGC-Santé)."
            }
            RejectReason::Expired => {
                "Votre certificat de signature n'est pas en cours de validité (expiré ou pas encore \
                 valide) : renouvelez-le auprès de votre autorité de certification, puis renvoyez \
                 votre message."
            }
            RejectReason::Revoked => {
                "Votre certificat de signature a été révoqué : demandez-en un nouveau à votre \
                 autorité de certification, puis renvoyez votre message."
            }
            RejectReason::WrongUsage => {
                "Le certificat utilisé pour signer ne permet pas la signature de messagerie \
                 (usage « protection du courrier électronique » absent) : signez avec votre \
                 certificat de messagerie MSSanté."
            }
            RejectReason::WeakKey => {
                "La clé de votre certificat de signature est trop courte pour être sûre (en \
                 dessous du minimum de la passerelle : 2048 bits en RSA par défaut, 256 bits en \
                 courbe elliptique) : demandez un certificat MSSanté récent à votre autorité de \
                 certification, puis renvoyez votre message."
            }
            RejectReason::FromMismatch => {
                "L'adresse de l'expéditeur ne correspond pas à l'adresse inscrite dans le \
                 certificat qui a signé le contenu du message : envoyez le message depuis la \
                 boîte aux lettres à laquelle votre certificat est rattaché, signé par vous ; un \
                 message signé par un autre professionnel ne peut pas être réexpédié en votre nom."
            }
            RejectReason::BadSignature => {
                "La signature de votre message est invalide ou ne peut pas être vérifiée : \
                 renvoyez le message signé avec votre certificat MSSanté."
            }
            RejectReason::Tampered => {
                "Le contenu de votre message ne correspond pas à sa signature (il a pu être \
                 modifié en chemin) : renvoyez le message sans le modifier après signature."
            }
            RejectReason::Unsigned => {
                "Votre message n'est pas signé : la passerelle n'accepte que des messages signés \
                 (S/MIME) avec votre certificat MSSanté. Activez la signature et renvoyez-le."
            }
            RejectReason::NotEncrypted => {
                "Votre message n'est pas chiffré : la passerelle n'accepte que des messages \
                 chiffrés pour son adresse. Activez le chiffrement et renvoyez-le."
            }
            RejectReason::CannotDecrypt => {
                "La passerelle ne peut pas déchiffrer votre message : il n'a pas été chiffré pour \
                 son certificat actuel. Mettez à jour le certificat du destinataire dans votre \
                 messagerie et renvoyez-le."
            }
            RejectReason::Malformed => {
                "Votre message est illisible (structure S/MIME endommagée ou incomplète) : \
                 renvoyez-le depuis votre messagerie sécurisée."
            }
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// An incoming message that must not be handled as authenticated mail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    pub reason: RejectReason,
    /// For the administrator: which layer, the OpenSSL error summary. Never body content.
    pub detail: String,
    /// True only when a valid, trusted signature by the `From` address was verified, so that
    /// a reply to `From` cannot be backscatter.
    pub sender_authenticated: bool,
    /// With `sender_authenticated`: the verified, trusted signer, whose certificate may be
    /// learned so that the answer can be encrypted to them.
    pub signer: Option<Box<super::SignerIdentity>>,
}

impl Rejection {
    pub(crate) fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
            sender_authenticated: false,
            signer: None,
        }
    }
}

/// Loading keys and certificates, or signing and encrypting outgoing mail.
#[derive(Debug, thiserror::Error)]
pub enum SmimeError {
    #[error("{}: {what}", path.display())]
    File { path: PathBuf, what: String },
    #[error("S/MIME settings: {0}")]
    Settings(String),
    #[error("outgoing message: {0}")]
    Message(String),
    #[error("{context}: {source}")]
    OpenSsl {
        context: &'static str,
        #[source]
        source: openssl::error::ErrorStack,
    },
}

impl SmimeError {
    pub(crate) fn file(path: &std::path::Path, what: impl Into<String>) -> Self {
        SmimeError::File {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// Short one-line summary of an OpenSSL error stack, for admin details and logs.
pub(crate) fn ssl_summary(e: &openssl::error::ErrorStack) -> String {
    let parts: Vec<String> = e
        .errors()
        .iter()
        .map(|er| {
            format!(
                "{}:{}",
                er.function().unwrap_or("?"),
                er.reason().unwrap_or("?")
            )
        })
        .collect();
    if parts.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        parts.join("; ")
    }
}
