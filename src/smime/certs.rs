//! Certificate stores and policy: loading keys (PEM or PKCS#12), trust anchors and CRLs, the
//! trust checks on a certificate at a given time, and reading identities out of certificates.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use openssl::asn1::Asn1Time;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509, X509Crl, X509Ref, X509StoreContext};

use super::cms::{self, DecryptionKey};
use super::error::{RejectReason, SmimeError, ssl_summary};
use crate::address::EmailAddress;

/// Reads a file holding secret material, refusing it when other users may read it.
pub fn read_private_file(path: &Path) -> Result<Vec<u8>, SmimeError> {
    crate::config::private_mode(path).map_err(|problem| SmimeError::file(path, problem))?;
    std::fs::read(path).map_err(|e| SmimeError::file(path, format!("cannot read: {e}")))
}

fn read_public_file(path: &Path) -> Result<Vec<u8>, SmimeError> {
    std::fs::read(path).map_err(|e| SmimeError::file(path, format!("cannot read: {e}")))
}

/// Certificates in a PEM (one or several) or DER file.
pub fn certs_from_bytes(bytes: &[u8]) -> Vec<X509> {
    match X509::stack_from_pem(bytes) {
        Ok(v) if !v.is_empty() => v,
        _ => X509::from_der(bytes).map(|c| vec![c]).unwrap_or_default(),
    }
}

/// A key pair with the chain that goes with the certificate.
pub struct Identity {
    pub key: DecryptionKey,
    pub chain: Vec<X509>,
}

/// Loads `certificate` + `private_key` (PEM) or `pkcs12` + `pkcs12_password_file`.
pub fn load_identity(
    what: &str,
    certificate: Option<&Path>,
    private_key: Option<&Path>,
    pkcs12: Option<&Path>,
    password_file: Option<&Path>,
) -> Result<Identity, SmimeError> {
    match (certificate, private_key, pkcs12) {
        (Some(cert_path), Some(key_path), None) => {
            let certs = certs_from_bytes(&read_public_file(cert_path)?);
            let mut certs = certs.into_iter();
            let cert = certs
                .next()
                .ok_or_else(|| SmimeError::file(cert_path, "no certificate in file"))?;
            let key_bytes = read_private_file(key_path)?;
            let key = PKey::private_key_from_pem(&key_bytes)
                .or_else(|_| PKey::private_key_from_der(&key_bytes))
                .map_err(|e| {
                    SmimeError::file(
                        key_path,
                        format!("not a readable private key: {}", ssl_summary(&e)),
                    )
                })?;
            check_pair(&cert, &key, key_path)?;
            Ok(Identity {
                key: DecryptionKey { cert, key },
                chain: certs.collect(),
            })
        }
        (None, None, Some(p12_path)) => {
            let pass_path = password_file.ok_or_else(|| {
                SmimeError::Settings(format!("{what}: pkcs12 needs pkcs12_password_file"))
            })?;
            read_private_file(pass_path)?;
            let password = crate::config::read_secret(pass_path)
                .map_err(|e| SmimeError::file(pass_path, format!("cannot read: {e}")))?;
            let der = read_private_file(p12_path)?;
            let parsed = Pkcs12::from_der(&der)
                .and_then(|p| p.parse2(&password))
                .map_err(|e| {
                    SmimeError::file(
                        p12_path,
                        format!("cannot open PKCS#12 (wrong password?): {}", ssl_summary(&e)),
                    )
                })?;
            let cert = parsed
                .cert
                .ok_or_else(|| SmimeError::file(p12_path, "PKCS#12 holds no certificate"))?;
            let key = parsed
                .pkey
                .ok_or_else(|| SmimeError::file(p12_path, "PKCS#12 holds no private key"))?;
            check_pair(&cert, &key, p12_path)?;
            let chain = parsed
                .ca
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
            Ok(Identity {
                key: DecryptionKey { cert, key },
                chain,
            })
        }
        _ => Err(SmimeError::Settings(format!(
            "{what}: give either certificate and private_key, or pkcs12 and pkcs12_password_file"
        ))),
    }
}

fn check_pair(
    cert: &X509,
    key: &PKey<openssl::pkey::Private>,
    path: &Path,
) -> Result<(), SmimeError> {
    let public = cert
        .public_key()
        .map_err(|e| SmimeError::file(path, ssl_summary(&e)))?;
    if public.public_eq(key) {
        Ok(())
    } else {
        Err(SmimeError::file(
            path,
            "private key does not match the certificate",
        ))
    }
}

/// Files directly in `path` (or `path` itself when it is a file), sorted for stable order.
fn files_of(path: &Path) -> Result<Vec<PathBuf>, SmimeError> {
    Ok(stamped_files_of(path)?
        .into_iter()
        .map(|(p, _)| p)
        .collect())
}

/// [`files_of`] with each file's modification time, from one `stat` per file: every message
/// asks whether a certificate folder changed (several times), so this stays cheap.
fn stamped_files_of(path: &Path) -> Result<Vec<(PathBuf, Option<SystemTime>)>, SmimeError> {
    let meta = std::fs::metadata(path);
    if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
        let modified = meta.and_then(|m| m.modified()).ok();
        return Ok(vec![(path.to_path_buf(), modified)]);
    }
    let rd =
        std::fs::read_dir(path).map_err(|e| SmimeError::file(path, format!("cannot list: {e}")))?;
    let mut v: Vec<(PathBuf, Option<SystemTime>)> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            // Followed like `is_file`: a symlink to a certificate counts.
            let m = std::fs::metadata(&p).ok().filter(|m| m.is_file())?;
            Some((p, m.modified().ok()))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The trust anchors with the stamp of the files they came from, so that an anchor added by
/// the operator (before `quarantine reprocess`, say) is seen without a restart, like a CRL.
pub struct AnchorSet {
    pub certs: Vec<X509>,
    stamp: Vec<(PathBuf, Option<SystemTime>)>,
}

impl AnchorSet {
    pub fn load(path: &Path) -> Result<AnchorSet, SmimeError> {
        let stamp = CrlSet::stamp_of(path);
        Ok(AnchorSet {
            certs: load_anchors(path)?,
            stamp,
        })
    }

    /// True when a file of `path` was added, removed or modified since loading.
    pub fn is_stale(&self, path: &Path) -> bool {
        CrlSet::stamp_of(path) != self.stamp
    }
}

/// Trust anchors from a PEM file or a folder of certificate files.
pub fn load_anchors(path: &Path) -> Result<Vec<X509>, SmimeError> {
    let mut anchors = Vec::new();
    for f in files_of(path)? {
        anchors.extend(certs_from_bytes(&read_public_file(&f)?));
    }
    if anchors.is_empty() {
        return Err(SmimeError::file(path, "no trust anchor certificate found"));
    }
    Ok(anchors)
}

/// The certificates of `recipients_dir`, each with the addresses it carries, and the stamp of
/// the files they came from: parsed once, reread only when a file is added, removed or changed
/// (every outgoing message asks for one; parsing the folder each time cost more than signing).
#[derive(Default)]
pub struct RecipientSet {
    pub certs: Vec<(X509, Vec<EmailAddress>)>,
    stamp: Vec<(PathBuf, Option<SystemTime>)>,
}

impl RecipientSet {
    /// Every certificate in the PEM/DER files of `dir` (unreadable files are skipped).
    pub fn load(dir: &Path) -> RecipientSet {
        let stamp = CrlSet::stamp_of(dir);
        let certs = stamp
            .iter()
            .filter_map(|(f, _)| std::fs::read(f).ok())
            .flat_map(|b| certs_from_bytes(&b))
            .map(|c| {
                let emails = cert_emails(&c);
                (c, emails)
            })
            .collect();
        RecipientSet { certs, stamp }
    }

    /// True when a file in `dir` was added, removed or modified since loading.
    pub fn is_stale(&self, dir: &Path) -> bool {
        CrlSet::stamp_of(dir) != self.stamp
    }

    /// The certificates naming `address` (compared without the plus-tag).
    pub fn for_address(&self, address: &EmailAddress) -> Vec<X509> {
        self.certs
            .iter()
            .filter(|(_, emails)| emails.iter().any(|e| e.base() == address.base()))
            .map(|(c, _)| c.clone())
            .collect()
    }
}

/// CRLs of `crl_dir` and the modification times they were read at.
#[derive(Default)]
pub struct CrlSet {
    pub crls: Vec<X509Crl>,
    stamp: Vec<(PathBuf, Option<SystemTime>)>,
}

impl CrlSet {
    fn stamp_of(dir: &Path) -> Vec<(PathBuf, Option<SystemTime>)> {
        stamped_files_of(dir).unwrap_or_default()
    }

    /// Loads every CRL (PEM, several per file allowed, or DER).
    pub fn load(dir: &Path) -> Result<CrlSet, SmimeError> {
        if !dir.is_dir() {
            return Err(SmimeError::file(dir, "crl_dir is not a folder"));
        }
        let stamp = Self::stamp_of(dir);
        let mut crls = Vec::new();
        for (f, _) in &stamp {
            let bytes = read_public_file(f)?;
            let mut found = pem_crls(&bytes);
            if found.is_empty() {
                found.extend(X509Crl::from_der(&bytes).ok());
            }
            if found.is_empty() {
                return Err(SmimeError::file(f, "not a CRL (PEM or DER)"));
            }
            crls.extend(found);
        }
        Ok(CrlSet { crls, stamp })
    }

    /// True when a file in `dir` was added, removed or modified since loading.
    pub fn is_stale(&self, dir: &Path) -> bool {
        Self::stamp_of(dir) != self.stamp
    }
}

fn pem_crls(bytes: &[u8]) -> Vec<X509Crl> {
    const END: &[u8] = b"-----END X509 CRL-----";
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some(p) = rest.windows(END.len()).position(|w| w == END) {
        let (block, tail) = rest.split_at(p + END.len());
        out.extend(X509Crl::from_pem(block).ok());
        rest = tail;
    }
    out
}

/// Everything a trust decision needs, at one instant.
pub struct TrustView<'a> {
    pub anchors: &'a [X509],
    pub crls: &'a [X509Crl],
    pub require_crl: bool,
}

/// What a certificate is to be used for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Sign,
    Encrypt,
}

const KU_DIGITAL_SIGNATURE: u32 = 0x80;
const KU_NON_REPUDIATION: u32 = 0x40;
const KU_KEY_ENCIPHERMENT: u32 = 0x20;
const KU_KEY_AGREEMENT: u32 = 0x08;
const XKU_SMIME: u32 = 0x4;
const XKU_ANYEKU: u32 = 0x100;

// X509_V_ERR_* codes used to classify a failed chain check.
const V_UNABLE_TO_GET_CRL: i32 = 3;
const V_CERT_NOT_YET_VALID: i32 = 9;
const V_CERT_HAS_EXPIRED: i32 = 10;
const V_CERT_REVOKED: i32 = 23;

impl TrustView<'_> {
    fn verify(
        &self,
        cert: &X509Ref,
        untrusted: &[X509],
        now: DateTime<Utc>,
        crls: &[&X509Crl],
    ) -> Result<(), (i32, String)> {
        let fail = |e: openssl::error::ErrorStack| (-1, ssl_summary(&e));
        let mut b = X509StoreBuilder::new().map_err(fail)?;
        for a in self.anchors {
            b.add_cert(a.clone()).map_err(fail)?;
        }
        let mut param = X509VerifyParam::new().map_err(fail)?;
        param.set_time(now.timestamp());
        if !crls.is_empty() {
            for c in crls {
                cms::store_add_crl(&mut b, c).map_err(fail)?;
            }
            param.set_flags(X509VerifyFlags::CRL_CHECK).map_err(fail)?;
        }
        b.set_param(&param).map_err(fail)?;
        let store = b.build();
        let mut chain = Stack::new().map_err(fail)?;
        for c in untrusted {
            chain.push(c.clone()).map_err(fail)?;
        }
        let mut ctx = X509StoreContext::new().map_err(fail)?;
        let result = ctx
            .init(&store, cert, &chain, |c| {
                Ok((c.verify_cert()?, c.error(), c.error_depth()))
            })
            .map_err(fail)?;
        match result {
            (true, _, _) => Ok(()),
            (false, err, depth) => Err((
                err.as_raw(),
                format!("{} (depth {depth})", err.error_string()),
            )),
        }
    }

    /// The trust checks, in the order the reasons take precedence: chain, validity,
    /// revocation, usage. `Err` carries the reason and an admin detail.
    pub fn check(
        &self,
        cert: &X509Ref,
        untrusted: &[X509],
        now: DateTime<Utc>,
        usage: Usage,
    ) -> Result<(), (RejectReason, String)> {
        // 1. Chain and validity, without CRLs: OpenSSL reports chain errors before dates.
        if let Err((code, msg)) = self.verify(cert, untrusted, now, &[]) {
            let reason = match code {
                V_CERT_HAS_EXPIRED | V_CERT_NOT_YET_VALID => RejectReason::Expired,
                _ => RejectReason::Untrusted,
            };
            return Err((reason, msg));
        }
        // 2. Revocation, only against CRLs from the certificate's issuer.
        let issuer = cert.issuer_name();
        let crls: Vec<&X509Crl> = self
            .crls
            .iter()
            .filter(|c| c.issuer_name().try_cmp(issuer).is_ok_and(|o| o.is_eq()))
            .collect();
        if crls.is_empty() {
            if self.require_crl {
                return Err((
                    RejectReason::Untrusted,
                    "no CRL for the issuer and require_crl is set".into(),
                ));
            }
            tracing::warn!(subject = %name_summary(cert), "no CRL for the certificate's issuer: revocation not checked");
        } else if let Err((code, msg)) = self.verify(cert, untrusted, now, &crls) {
            let reason = match code {
                V_CERT_REVOKED => RejectReason::Revoked,
                V_UNABLE_TO_GET_CRL if !self.require_crl => return Ok(()),
                _ => RejectReason::Untrusted,
            };
            return Err((reason, format!("revocation check: {msg}")));
        }
        // 3. Usage: an EKU extension must allow e-mail protection; a KeyUsage extension the
        //    operation at hand.
        if cms::extended_key_usage(cert).is_some_and(|eku| eku & (XKU_SMIME | XKU_ANYEKU) == 0) {
            return Err((
                RejectReason::WrongUsage,
                "extended key usage lacks emailProtection".into(),
            ));
        }
        if let Some(ku) = cms::key_usage(cert) {
            let needed = match usage {
                Usage::Sign => KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION,
                Usage::Encrypt => KU_KEY_ENCIPHERMENT | KU_KEY_AGREEMENT,
            };
            if ku & needed == 0 {
                return Err((
                    RejectReason::WrongUsage,
                    "key usage does not allow this operation".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The e-mail addresses a certificate is issued for: subjectAltName rfc822Name entries, then
/// emailAddress attributes of the subject.
pub fn cert_emails(cert: &X509Ref) -> Vec<EmailAddress> {
    let mut out = Vec::new();
    if let Some(names) = cert.subject_alt_names() {
        out.extend(
            names
                .iter()
                .filter_map(|n| n.email())
                .filter_map(|e| EmailAddress::parse(e).ok()),
        );
    }
    out.extend(
        cert.subject_name()
            .entries_by_nid(Nid::PKCS9_EMAILADDRESS)
            .filter_map(|e| e.data().to_string().ok())
            .filter_map(|s| EmailAddress::parse(&s).ok()),
    );
    out
}

pub fn common_name(cert: &X509Ref) -> String {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_default()
}

/// For logs: the subject CN (an identity, not patient data).
pub fn name_summary(cert: &X509Ref) -> String {
    let cn = common_name(cert);
    if cn.is_empty() { "(no CN)".into() } else { cn }
}

/// Splits a health-professional CN "<national id>/<NOM Prénom>" (IGC-Santé, e.g.
/// "10001234567/MARTIN Olivier") into the id and "Prénom NOM". Other CNs: (None, the CN).
pub fn parse_professional_cn(cn: &str) -> (Option<String>, Option<String>) {
    let cn = cn.trim();
    if cn.is_empty() {
        return (None, None);
    }
    let Some((id, name)) = cn.split_once('/') else {
        return (None, Some(cn.to_string()));
    };
    let (id, name) = (id.trim(), name.trim());
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) || name.is_empty() {
        return (None, Some(cn.to_string()));
    }
    // The family name is written in capitals and comes first; the given names follow.
    let words: Vec<&str> = name.split_whitespace().collect();
    let split = words
        .iter()
        .position(|w| w.chars().any(char::is_lowercase))
        .unwrap_or(words.len());
    let display = match words.split_at(split) {
        (family, given) if !family.is_empty() && !given.is_empty() => {
            format!("{} {}", given.join(" "), family.join(" "))
        }
        _ => words.join(" "),
    };
    (Some(id.to_string()), Some(display))
}

pub fn asn1_to_chrono(t: &openssl::asn1::Asn1TimeRef) -> Option<DateTime<Utc>> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    let secs = i64::from(d.days) * 86_400 + i64::from(d.secs);
    DateTime::from_timestamp(secs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn professional_cn() {
        assert_eq!(
            parse_professional_cn("10001234567/MARTIN Olivier"),
            (Some("10001234567".into()), Some("Olivier MARTIN".into()))
        );
        assert_eq!(
            parse_professional_cn("10007654321/BUA Jean-René"),
            (Some("10007654321".into()), Some("Jean-René BUA".into()))
        );
        assert_eq!(
            parse_professional_cn("10001/DE LA TOUR Marie Anne"),
            (Some("10001".into()), Some("Marie Anne DE LA TOUR".into()))
        );
        assert_eq!(
            parse_professional_cn("Pneumologie"),
            (None, Some("Pneumologie".into()))
        );
        assert_eq!(parse_professional_cn(""), (None, None));
    }
}
