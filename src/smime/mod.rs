//! S/MIME: unwrap, verify, decrypt, sign, encrypt, and the certificate stores.
//!
//! `SmimeEngine::authenticate` decides who an incoming message is from (or why it is refused);
//! `SmimeEngine::protect` signs and encrypts what the gateway sends. The layer walk is in
//! `unwrap` (pure: no trust decision, fuzzed), trust policy in `certs`, OpenSSL calls in `cms`.

mod certs;
mod cms;
mod error;
mod keys;
pub(crate) mod mime;
mod protect;
mod unwrap;
mod verdicts;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use openssl::x509::{X509, X509Ref};

use crate::address::EmailAddress;
use crate::config::{Cipher, SmimeSettings};

pub use cms::DecryptionKey;
pub use error::{RejectReason, Rejection, SmimeError};
pub use unwrap::{Layer, MAX_DEPTH, Unwrapped, unwrap_layers};

use certs::{AnchorSet, CrlSet, RecipientSet, TrustView, Usage};

/// Who signed an accepted message, as read from the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerIdentity {
    /// The certificate's address that equals the message's `From`.
    pub email: EmailAddress,
    pub common_name: String,
    /// "Olivier MARTIN" for a CN "10001234567/MARTIN Olivier", else the CN.
    pub display_name: Option<String>,
    /// The national professional id from a CN "<id>/<NOM Prénom>".
    pub rpps: Option<String>,
    pub cert_der: Vec<u8>,
    pub not_after: DateTime<Utc>,
}

/// An incoming message whose author is established. Only `content` and `signer` are
/// authenticated: the outer headers (Subject, To, Date…) are not covered by S/MIME signatures.
#[derive(Clone)]
pub struct Authenticated {
    /// The innermost MIME entity: its own headers (Content-Type…) and body, CRLF.
    pub content: Vec<u8>,
    pub signer: SignerIdentity,
    /// Some layer was encrypted to one of the gateway keys.
    pub encrypted: bool,
    /// Identifies the author's signature (the innermost one, over the content): SHA-256, hex,
    /// of the signer certificate and the signature value. A copy of the message with new
    /// outer headers or re-encrypted carries the same signature, hence the same digest.
    pub signature_digest: String,
}

impl std::fmt::Debug for Authenticated {
    /// The content is patient data: only its size is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticated")
            .field("signer", &self.signer)
            .field("encrypted", &self.encrypted)
            .field("content_size", &self.content.len())
            .finish()
    }
}

/// The gateway's S/MIME keys, trust anchors and CRLs. Shared by the intake and the outbox.
pub struct SmimeEngine {
    identity: certs::Identity,
    /// Current key first, then the `previous` ones kept for a renewal.
    keys: Vec<DecryptionKey>,
    trust_anchors: PathBuf,
    anchors: RwLock<AnchorSet>,
    crl_dir: Option<PathBuf>,
    crls: RwLock<CrlSet>,
    require_crl: bool,
    require_encryption: bool,
    recipients_dir: Option<PathBuf>,
    recipients: RwLock<RecipientSet>,
    cipher: Cipher,
    min_rsa_bits: u32,
    /// Bumped on every reload of the anchors or the CRLs: older verdicts no longer hold.
    trust_generation: AtomicU64,
    /// Recipient certificates parsed, and found fit to encrypt to (verdicts.rs).
    verdicts: verdicts::Verdicts,
}

impl SmimeEngine {
    /// Loads every key, certificate and CRL; an error names the file and what is wrong.
    pub fn load(settings: &SmimeSettings) -> Result<SmimeEngine, SmimeError> {
        let identity = certs::load_identity(
            "[smime]",
            settings.certificate.as_deref(),
            settings.private_key.as_deref(),
            settings.pkcs12.as_deref(),
            settings.pkcs12_password_file.as_deref(),
        )?;
        let mut keys = vec![identity.key.clone()];
        for (i, p) in settings.previous.iter().enumerate() {
            let old = certs::load_identity(
                &format!("[[smime.previous]] #{}", i + 1),
                p.certificate.as_deref(),
                p.private_key.as_deref(),
                p.pkcs12.as_deref(),
                p.pkcs12_password_file.as_deref(),
            )?;
            keys.push(old.key);
        }
        let anchors = AnchorSet::load(&settings.trust_anchors)?;
        let crls = match &settings.crl_dir {
            Some(dir) => CrlSet::load(dir)?,
            None if settings.require_crl => {
                return Err(SmimeError::Settings(
                    "require_crl = true needs crl_dir".into(),
                ));
            }
            None => CrlSet::default(),
        };
        if let Some(dir) = settings.recipients_dir.as_ref().filter(|d| !d.is_dir()) {
            return Err(SmimeError::file(dir, "recipients_dir is not a folder"));
        }
        tracing::info!(
            gateway = %certs::name_summary(&identity.key.cert),
            decryption_keys = keys.len(),
            anchors = anchors.certs.len(),
            crls = crls.crls.len(),
            "S/MIME keys loaded"
        );
        let engine = SmimeEngine {
            identity,
            keys,
            trust_anchors: settings.trust_anchors.clone(),
            anchors: RwLock::new(anchors),
            crl_dir: settings.crl_dir.clone(),
            crls: RwLock::new(crls),
            require_crl: settings.require_crl,
            require_encryption: settings.require_encryption,
            recipients_dir: settings.recipients_dir.clone(),
            recipients: RwLock::new(
                settings
                    .recipients_dir
                    .as_deref()
                    .map(RecipientSet::load)
                    .unwrap_or_default(),
            ),
            cipher: settings.cipher,
            min_rsa_bits: settings.min_rsa_bits,
            trust_generation: AtomicU64::new(0),
            verdicts: verdicts::Verdicts::default(),
        };
        let own = &engine.identity;
        if let Err((reason, detail)) =
            engine.check(&own.key.cert, &own.chain, Utc::now(), Usage::Sign)
        {
            tracing::warn!(
                %reason,
                %detail,
                "the gateway certificate fails the checks applied to correspondents: \
                 recipients may refuse its mail"
            );
        }
        Ok(engine)
    }

    pub fn gateway_certificate(&self) -> &X509 {
        &self.identity.key.cert
    }

    /// Rereads the CRL folder when a file in it changed (a stat per file: cheap).
    fn refresh_crls(&self) {
        let Some(dir) = &self.crl_dir else { return };
        let stale = self.crls.read().map(|s| s.is_stale(dir)).unwrap_or(true);
        if !stale {
            return;
        }
        match CrlSet::load(dir) {
            Ok(fresh) => {
                tracing::info!(crls = fresh.crls.len(), "CRL folder changed: reloaded");
                self.trust_generation.fetch_add(1, Ordering::AcqRel);
                if let Ok(mut guard) = self.crls.write() {
                    *guard = fresh;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "CRL folder changed but cannot be reloaded: keeping the previous CRLs")
            }
        }
    }

    /// The certificates of `recipients_dir` naming `address`, rereading the folder first when a
    /// file in it changed (a stat per file).
    fn recipients_for(&self, address: &EmailAddress) -> Vec<X509> {
        let Some(dir) = &self.recipients_dir else {
            return Vec::new();
        };
        let stale = self
            .recipients
            .read()
            .map(|s| s.is_stale(dir))
            .unwrap_or(true);
        if stale {
            let fresh = RecipientSet::load(dir);
            tracing::info!(
                certificates = fresh.certs.len(),
                "recipients folder changed: reloaded"
            );
            if let Ok(mut guard) = self.recipients.write() {
                *guard = fresh;
            }
        }
        self.recipients
            .read()
            .map(|s| s.for_address(address))
            .unwrap_or_default()
    }

    /// Rereads the trust anchors when a file changed; keeps the previous ones when the new
    /// set cannot be read (an empty or half-written folder).
    fn refresh_anchors(&self) {
        let stale = self
            .anchors
            .read()
            .map(|s| s.is_stale(&self.trust_anchors))
            .unwrap_or(true);
        if !stale {
            return;
        }
        match AnchorSet::load(&self.trust_anchors) {
            Ok(fresh) => {
                tracing::info!(
                    anchors = fresh.certs.len(),
                    "trust anchors changed: reloaded"
                );
                self.trust_generation.fetch_add(1, Ordering::AcqRel);
                if let Ok(mut guard) = self.anchors.write() {
                    *guard = fresh;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "trust anchors changed but cannot be reloaded: keeping the previous ones")
            }
        }
    }

    /// The trust checks of `cert` for `usage` (chain, validity, revocation, usage, key
    /// strength), the anchors and CRLs reread first when one of their files changed.
    fn check(
        &self,
        cert: &X509Ref,
        untrusted: &[X509],
        now: DateTime<Utc>,
        usage: Usage,
    ) -> Result<(), (RejectReason, String)> {
        self.refresh_anchors();
        self.refresh_crls();
        self.check_loaded(cert, untrusted, now, usage)
    }

    /// [`Self::check`] against the anchors and CRLs as loaded, for a caller that refreshed them.
    fn check_loaded(
        &self,
        cert: &X509Ref,
        untrusted: &[X509],
        now: DateTime<Utc>,
        usage: Usage,
    ) -> Result<(), (RejectReason, String)> {
        let anchors = self.anchors.read().map_err(|_| {
            (
                RejectReason::Untrusted,
                "trust anchors unavailable".to_string(),
            )
        })?;
        let guard = self
            .crls
            .read()
            .map_err(|_| (RejectReason::Untrusted, "CRL store unavailable".to_string()))?;
        let view = TrustView {
            anchors: &anchors.certs,
            crls: &guard.crls,
            require_crl: self.require_crl,
        };
        view.check(cert, untrusted, now, usage)?;
        keys::check_strength(cert, self.min_rsa_bits).map_err(|d| (RejectReason::WeakKey, d))
    }

    /// Decides who `raw` is from, or why it is refused.
    ///
    /// Precedence (the first that applies wins): `Malformed` (no usable From, unparsable
    /// structure, bad base64 or DER, too deep) and `CannotDecrypt` (encrypted, but to none of
    /// the gateway keys), in the order the layers are met from the outside in; then `Tampered`
    /// (a content digest does not match) or `BadSignature` (a signature is invalid or cannot
    /// be checked), also per layer; `Unsigned` (no signature layer at all); then, over all
    /// signer certificates, the worst of `Untrusted` < `Expired` < `Revoked` < `WrongUsage` <
    /// `WeakKey` (every signature layer must pass, not just the author's); `FromMismatch` (the
    /// author, the signer of the innermost signed layer, is not From: outer signers never
    /// author a message, so someone re-signing another doctor's signed content is refused);
    /// `NotEncrypted` (with `sender_authenticated = true`).
    pub fn authenticate(&self, raw: &[u8], now: DateTime<Utc>) -> Result<Authenticated, Rejection> {
        let from = outer_from(raw)?;
        let unwrapped = unwrap_layers(raw, &self.keys)?;
        let signed: Vec<(&X509, &[X509])> = unwrapped
            .layers
            .iter()
            .filter_map(|l| match l {
                Layer::Signed { signers, certs, .. } => {
                    Some(signers.iter().map(move |s| (s, certs.as_slice())))
                }
                Layer::Encrypted { .. } => None,
            })
            .flatten()
            .collect();
        // Layers are outermost first: the last signed one is over the content.
        let innermost = unwrapped.layers.iter().rev().find_map(|l| match l {
            Layer::Signed {
                signers,
                signatures,
                ..
            } => Some((signers, signatures)),
            Layer::Encrypted { .. } => None,
        });
        let Some((inner_signers, inner_signatures)) = innermost.filter(|_| !signed.is_empty())
        else {
            return Err(Rejection::new(
                RejectReason::Unsigned,
                "no S/MIME signature",
            ));
        };
        let mut worst: Option<(RejectReason, String)> = None;
        for (cert, untrusted) in &signed {
            if let Err((reason, detail)) = self.check(cert, untrusted, now, Usage::Sign) {
                let detail = format!("signer {:?}: {detail}", certs::name_summary(cert));
                if worst.as_ref().is_none_or(|(w, _)| rank(reason) < rank(*w)) {
                    worst = Some((reason, detail));
                }
            }
        }
        if let Some((reason, detail)) = worst {
            return Err(Rejection::new(reason, detail));
        }
        let author = inner_signers
            .iter()
            .zip(inner_signatures)
            .find_map(|(cert, sig)| {
                certs::cert_emails(cert)
                    .into_iter()
                    .find(|e| e.base() == from.base())
                    .map(|e| (cert, sig, e))
            });
        let Some((cert, signature, email)) = author else {
            let addresses = |certs: &mut dyn Iterator<Item = &X509>| {
                let v: Vec<String> = certs
                    .flat_map(|c| certs::cert_emails(c))
                    .map(|e| e.to_string())
                    .collect();
                if v.is_empty() {
                    "no address".to_string()
                } else {
                    v.join(", ")
                }
            };
            let inner = addresses(&mut inner_signers.iter());
            let outer_count = signed.len() - inner_signers.len();
            let outer = addresses(&mut signed[..outer_count].iter().map(|(c, _)| *c));
            let mut detail =
                format!("From {from} is not the author: the content is signed by {inner}");
            if outer_count > 0 {
                detail.push_str(&format!(" (outer signature by {outer})"));
            }
            return Err(Rejection::new(RejectReason::FromMismatch, detail));
        };
        let common_name = certs::common_name(cert);
        let (rpps, display_name) = certs::parse_professional_cn(&common_name);
        let cert_der = cert
            .to_der()
            .map_err(|e| Rejection::new(RejectReason::Malformed, error::ssl_summary(&e)))?;
        let signature_digest = signature_digest(&cert_der, signature);
        let signer = SignerIdentity {
            email,
            common_name,
            display_name,
            rpps,
            cert_der,
            not_after: certs::asn1_to_chrono(cert.not_after()).ok_or_else(|| {
                Rejection::new(
                    RejectReason::Malformed,
                    "signer certificate date unreadable",
                )
            })?,
        };
        let encrypted = unwrapped.encrypted();
        if self.require_encryption && !encrypted {
            return Err(Rejection {
                reason: RejectReason::NotEncrypted,
                detail: "signed but not encrypted to the gateway (require_encryption)".into(),
                sender_authenticated: true,
                signer: Some(Box::new(signer)),
            });
        }
        tracing::debug!(signer = %signer.email, encrypted, layers = unwrapped.layers.len(), "S/MIME authenticated");
        Ok(Authenticated {
            content: unwrapped.content,
            signer,
            encrypted,
            signature_digest,
        })
    }

    /// Signs `message` (a complete cleartext message) with the gateway key and, when
    /// `encrypt`, encrypts it to every recipient and to the gateway (so the sent copy stays
    /// readable). Routing headers stay outside; the MIME entity goes inside. Given an owned
    /// buffer, the cleartext is freed as soon as it is signed (large forwards).
    pub fn protect(
        &self,
        message: impl Into<Vec<u8>>,
        recipients: &[X509],
        encrypt: bool,
    ) -> Result<Vec<u8>, SmimeError> {
        let mut to = Vec::new();
        if encrypt {
            if recipients.is_empty() {
                return Err(SmimeError::Message(
                    "encryption asked for but no recipient certificate given".into(),
                ));
            }
            // Callers choose recipients with `recipient_certificate`; this is the last guard.
            for r in recipients {
                keys::check_strength(r, self.min_rsa_bits).map_err(|d| {
                    SmimeError::Message(format!(
                        "recipient {}: weak_key: {d}",
                        certs::name_summary(r)
                    ))
                })?;
            }
            to.extend(recipients.iter().cloned());
            to.push(self.identity.key.cert.clone());
        }
        let gcm = self.cipher == Cipher::Aes256Gcm;
        protect::protect(
            message.into(),
            (
                &self.identity.key.cert,
                &self.identity.key.key,
                &self.identity.chain,
            ),
            encrypt.then_some((to.as_slice(), gcm)),
        )
    }

    /// A usable certificate for `address` from `recipients_dir` (PEM or DER under any file
    /// name, matched by the e-mail inside); the one valid longest when there are several.
    pub fn recipient_from_dir(&self, address: &EmailAddress) -> Option<X509> {
        self.recipient_certificate(address, None, Utc::now())
            .ok()
            .flatten()
    }

    /// The certificate to encrypt to for `address`: `learned` (from their signed mail) when it
    /// is usable, else the usable one of `recipients_dir` valid longest. `Ok(None)` when none
    /// is known; `Err` with the reason when the only candidates have weak keys, which are never
    /// encrypted to (the caller holds the message and says why).
    pub fn recipient_certificate(
        &self,
        address: &EmailAddress,
        learned: Option<X509>,
        now: DateTime<Utc>,
    ) -> Result<Option<X509>, String> {
        let mut from_dir = self.recipients_for(address);
        from_dir.sort_by_key(|c| std::cmp::Reverse(certs::asn1_to_chrono(c.not_after())));
        let mut weak = None;
        for cert in learned.into_iter().chain(from_dir) {
            match self.check_recipient(&cert, now) {
                Ok(()) => return Ok(Some(cert)),
                Err((reason, detail)) => {
                    tracing::info!(subject = %certs::name_summary(&cert), %reason, %detail, "certificate not usable");
                    if reason == RejectReason::WeakKey {
                        weak.get_or_insert(detail);
                    }
                }
            }
        }
        match weak {
            Some(detail) => Err(format!(
                "the certificate of {address} is refused (weak_key: {detail}): never encrypted to"
            )),
            None => Ok(None),
        }
    }

    /// A certificate from its DER (a learned one, read from the store), decoded once per
    /// process: `None` when it does not decode.
    pub fn certificate_from_der(&self, der: &[u8]) -> Option<X509> {
        self.verdicts.parse(der)
    }

    /// The checks before encrypting to `cert` ([`Self::check`] with `Usage::Encrypt`), a
    /// success remembered for a while (verdicts.rs): the same few recipients get every message.
    fn check_recipient(
        &self,
        cert: &X509,
        now: DateTime<Utc>,
    ) -> Result<(), (RejectReason, String)> {
        self.refresh_anchors();
        self.refresh_crls();
        let generation = self.trust_generation.load(Ordering::Acquire);
        let key = cert.to_der().ok().map(|der| verdicts::key_of(&der));
        if key.is_some_and(|k| self.verdicts.usable(&k, generation, now)) {
            return Ok(());
        }
        // Refreshed above: the generation read is the one this verdict is reached under.
        self.check_loaded(cert, &[], now, Usage::Encrypt)?;
        if let Some(k) = key {
            self.verdicts.remember(k, cert, generation, now);
        }
        Ok(())
    }

    /// True when `cert` may be encrypted to: chains to an anchor, valid at `now`, not revoked,
    /// usable for e-mail protection, a strong enough key. Used before learning a certificate.
    pub fn certificate_is_usable(&self, cert: &X509, now: DateTime<Utc>) -> bool {
        match self.check_recipient(cert, now) {
            Ok(()) => true,
            Err((reason, detail)) => {
                tracing::info!(subject = %certs::name_summary(cert), %reason, %detail, "certificate not usable");
                false
            }
        }
    }
}

/// The replay key of a signature: SHA-256 over a label, the signer certificate and the
/// signature value (length-prefixed, so no two inputs share an encoding), lowercase hex.
pub fn signature_digest(cert_der: &[u8], signature: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"teleavis signature v1\0");
    for part in [cert_der, signature] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// Position of a certificate-check reason in the precedence order.
fn rank(r: RejectReason) -> usize {
    RejectReason::ALL
        .iter()
        .position(|x| *x == r)
        .unwrap_or(usize::MAX)
}

/// The single address of the outer `From` header.
fn outer_from(raw: &[u8]) -> Result<EmailAddress, Rejection> {
    let bad = |what: &str| Rejection::new(RejectReason::Malformed, format!("From header: {what}"));
    let msg = mail_parser::MessageParser::default()
        .parse_headers(raw)
        .ok_or_else(|| bad("no header block"))?;
    // RFC 5322: exactly one From. With two, readers disagree on which is the author (this
    // parser takes the last, many clients show the first): refuse rather than guess.
    let from_headers = msg
        .headers()
        .iter()
        .filter(|h| h.name == mail_parser::HeaderName::From)
        .count();
    if from_headers > 1 {
        return Err(bad("several From headers"));
    }
    let from = msg.from().ok_or_else(|| bad("missing"))?;
    let addrs: Vec<&str> = from.iter().filter_map(|a| a.address()).collect();
    match addrs.as_slice() {
        [one] => EmailAddress::parse(one).map_err(|_| bad("not an e-mail address")),
        [] => Err(bad("no address")),
        _ => Err(bad("several addresses")),
    }
}
