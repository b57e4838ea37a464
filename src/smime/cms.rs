//! CMS primitives over OpenSSL: content-type sniffing, signature checks, decryption, and the
//! few OpenSSL calls the safe `openssl` crate does not wrap (small, commented FFI blocks).

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::x509::{X509, X509Crl, X509Ref, store::X509StoreBuilderRef};

use super::error::ssl_summary;

unsafe extern "C" {
    // Present in libcrypto 1.1 and 3.x; not declared by openssl-sys.
    // STACK_OF(CMS_SignerInfo) and CMS_SignerInfo are opaque here: only passed back.
    fn CMS_get0_SignerInfos(cms: *mut openssl_sys::CMS_ContentInfo) -> *mut std::ffi::c_void;
    fn CMS_SignerInfo_get0_signature(si: *mut std::ffi::c_void) -> *mut openssl_sys::ASN1_STRING;
    fn CMS_SignerInfo_get0_algs(
        si: *mut std::ffi::c_void,
        pk: *mut *mut openssl_sys::EVP_PKEY,
        signer: *mut *mut openssl_sys::X509,
        pdig: *mut *mut openssl_sys::X509_ALGOR,
        psig: *mut *mut openssl_sys::X509_ALGOR,
    );
    fn CMS_get1_certs(cms: *mut openssl_sys::CMS_ContentInfo) -> *mut openssl_sys::stack_st_X509;
    fn X509_STORE_add_crl(
        store: *mut openssl_sys::X509_STORE,
        crl: *mut openssl_sys::X509_CRL,
    ) -> std::ffi::c_int;
}

/// The CMS content types the gateway reads, from the ContentInfo OID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmsKind {
    Signed,
    Enveloped,
    AuthEnveloped,
    Other,
}

// DER bodies of the OIDs (RFC 5652, RFC 5083).
const OID_SIGNED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_ENVELOPED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const OID_AUTH_ENVELOPED: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];

/// Reads the content type of a (BER or DER) ContentInfo without trusting its length fields:
/// `smime-type` is often missing or wrong, the OID is what counts.
pub fn sniff(der: &[u8]) -> Option<CmsKind> {
    let mut it = der.iter().copied();
    if it.next()? != 0x30 {
        return None;
    }
    let first = it.next()?;
    if first & 0x80 != 0 && first != 0x80 {
        // Long form: skip the length octets.
        for _ in 0..(first & 0x7f) {
            it.next()?;
        }
    }
    if it.next()? != 0x06 {
        return None;
    }
    let len = usize::from(it.next()?);
    if len > 32 {
        return None;
    }
    let oid: Vec<u8> = it.by_ref().take(len).collect();
    if oid.len() != len {
        return None;
    }
    Some(match oid.as_slice() {
        OID_SIGNED => CmsKind::Signed,
        OID_ENVELOPED => CmsKind::Enveloped,
        OID_AUTH_ENVELOPED => CmsKind::AuthEnveloped,
        _ => CmsKind::Other,
    })
}

/// Why a signature did not verify, classified from OpenSSL's error stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigFailure {
    /// The content does not match its digest: changed after signing.
    Tampered(String),
    /// The signature itself is invalid or cannot be checked (no signer certificate…).
    Bad(String),
    /// Not a usable SignedData (no content, no signer).
    Malformed(String),
}

const ERR_LIB_CMS: std::ffi::c_int = 46;
const CMS_R_CONTENT_VERIFY_ERROR: std::ffi::c_int = 109;
const CMS_R_NO_CONTENT: std::ffi::c_int = 127;
const CMS_R_NO_SIGNERS: std::ffi::c_int = 134;

fn classify(e: &ErrorStack) -> SigFailure {
    let summary = ssl_summary(e);
    let has = |reason| {
        e.errors()
            .iter()
            .any(|er| er.library_code() == ERR_LIB_CMS && er.reason_code() == reason)
    };
    if has(CMS_R_CONTENT_VERIFY_ERROR) {
        SigFailure::Tampered(summary)
    } else if has(CMS_R_NO_CONTENT) || has(CMS_R_NO_SIGNERS) {
        SigFailure::Malformed(summary)
    } else {
        SigFailure::Bad(summary)
    }
}

/// A SignedData whose signatures all verified cryptographically (no trust decision yet).
pub struct Verified {
    /// The encapsulated content; empty for a detached signature (the caller has the data).
    pub content: Vec<u8>,
    /// The certificates that made the signatures, one per SignerInfo.
    pub signers: Vec<X509>,
    /// The signature value of each SignerInfo, in the order of `signers` (replay detection).
    pub signatures: Vec<Vec<u8>>,
    /// Every certificate the message carried (intermediates for chain building).
    pub certs: Vec<X509>,
}

/// Verifies every SignerInfo of `der` over `detached` (or the encapsulated content).
/// Trust in the signer certificates is decided later, by the caller's policy.
pub fn verify_signed(der: &[u8], detached: Option<&[u8]>) -> Result<Verified, SigFailure> {
    let mut cms =
        CmsContentInfo::from_der(der).map_err(|e| SigFailure::Malformed(ssl_summary(&e)))?;
    let mut content = Vec::new();
    let flags = CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY;
    // Detached content is the caller's already: OpenSSL reads it and keeps no copy.
    let out = if detached.is_some() {
        None
    } else {
        Some(&mut content)
    };
    cms.verify(None, None, detached, out, flags)
        .map_err(|e| classify(&e))?;
    // SAFETY: `cms` is a valid CMS_ContentInfo whose SignerInfos all got their signer
    // certificate from CMS_verify above. The SignerInfo stack, each SignerInfo, its signer
    // certificate and its signature value are borrowed from `cms`: we only read them, copy each
    // certificate with an owned reference (`to_owned` = X509_up_ref) and the signature bytes,
    // and free nothing. CMS_get1_certs returns a stack we own (`Stack` frees it and its certs).
    let (signers, signatures, certs) = unsafe {
        let mut signers = Vec::new();
        let mut signatures = Vec::new();
        let infos = CMS_get0_SignerInfos(cms.as_ptr());
        let n = if infos.is_null() {
            0
        } else {
            openssl_sys::OPENSSL_sk_num(infos.cast())
        };
        for i in 0..n {
            let si = openssl_sys::OPENSSL_sk_value(infos.cast(), i);
            if si.is_null() {
                continue;
            }
            let mut cert: *mut openssl_sys::X509 = std::ptr::null_mut();
            CMS_SignerInfo_get0_algs(
                si,
                std::ptr::null_mut(),
                &mut cert,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            let sig = CMS_SignerInfo_get0_signature(si);
            if cert.is_null() || sig.is_null() {
                continue;
            }
            let len = usize::try_from(openssl_sys::ASN1_STRING_length(sig)).unwrap_or(0);
            let data = openssl_sys::ASN1_STRING_get0_data(sig);
            let value = if data.is_null() || len == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data, len).to_vec()
            };
            signers.push(X509Ref::from_ptr(cert).to_owned());
            signatures.push(value);
        }
        let cp = CMS_get1_certs(cms.as_ptr());
        let certs = if cp.is_null() {
            Vec::new()
        } else {
            Stack::<X509>::from_ptr(cp).into_iter().collect()
        };
        (signers, signatures, certs)
    };
    if signers.is_empty() {
        return Err(SigFailure::Malformed("signed data without a signer".into()));
    }
    Ok(Verified {
        content,
        signers,
        signatures,
        certs,
    })
}

/// A private key the gateway decrypts with, and its certificate.
#[derive(Clone)]
pub struct DecryptionKey {
    pub cert: X509,
    pub key: PKey<Private>,
}

/// Why encrypted data could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptFailure {
    /// Not a readable CMS structure.
    Unreadable(String),
    /// Well formed, but none of the keys is a recipient (or the ciphertext is corrupt).
    NoKey(String),
}

/// Decrypts enveloped or authEnveloped data with the first key that is a recipient. The DER is
/// freed once OpenSSL has parsed it, before the cleartext is made (large messages).
pub fn decrypt(der: Vec<u8>, keys: &[DecryptionKey]) -> Result<Vec<u8>, DecryptFailure> {
    let cms =
        CmsContentInfo::from_der(&der).map_err(|e| DecryptFailure::Unreadable(ssl_summary(&e)))?;
    drop(der);
    let mut last = String::from("no decryption key configured");
    for k in keys {
        // With the certificate, OpenSSL picks the matching RecipientInfo (no trial decryption).
        match cms.decrypt(&k.key, &k.cert) {
            Ok(plain) => return Ok(plain),
            Err(e) => last = ssl_summary(&e),
        }
    }
    Err(DecryptFailure::NoKey(last))
}

/// Adds a CRL to a store under construction.
pub fn store_add_crl(builder: &mut X509StoreBuilderRef, crl: &X509Crl) -> Result<(), ErrorStack> {
    // SAFETY: both pointers are valid; X509_STORE_add_crl takes its own reference to the CRL.
    let r = unsafe { X509_STORE_add_crl(builder.as_ptr(), crl.as_ptr()) };
    if r <= 0 {
        Err(ErrorStack::get())
    } else {
        Ok(())
    }
}

/// Extended key usage bits of a certificate, or `None` when it has no EKU extension.
pub fn extended_key_usage(cert: &X509Ref) -> Option<u32> {
    // SAFETY: valid certificate pointer; the call only reads (and caches) extensions.
    let v = unsafe { openssl_sys::X509_get_extended_key_usage(cert.as_ptr()) };
    if v == u32::MAX { None } else { Some(v) }
}

/// Key usage bits of a certificate, or `None` when it has no KeyUsage extension.
pub fn key_usage(cert: &X509Ref) -> Option<u32> {
    // SAFETY: as above.
    let v = unsafe { openssl_sys::X509_get_key_usage(cert.as_ptr()) };
    if v == u32::MAX { None } else { Some(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_indefinite_and_definite_lengths() {
        let mut signed = vec![0x30, 0x80, 0x06, 0x09];
        signed.extend_from_slice(OID_SIGNED);
        assert_eq!(sniff(&signed), Some(CmsKind::Signed));
        let mut auth = vec![0x30, 0x82, 0x01, 0x00, 0x06, 0x0b];
        auth.extend_from_slice(OID_AUTH_ENVELOPED);
        assert_eq!(sniff(&auth), Some(CmsKind::AuthEnveloped));
        assert_eq!(sniff(b"garbage"), None);
        assert_eq!(sniff(&[0x30]), None);
        assert_eq!(sniff(&[]), None);
    }
}
