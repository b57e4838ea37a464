//! Outgoing protection: signs a message's MIME entity as multipart/signed with the gateway
//! key and, when asked, encrypts it to its recipients and to the gateway itself.

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use sha2::{Digest, Sha256};

use super::error::SmimeError;
use super::mime::{self, canonical_crlf};

fn ssl(context: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> SmimeError {
    move |source| SmimeError::OpenSsl { context, source }
}

/// Splits a complete message into its routing headers (kept outside) and its MIME entity
/// (Content-* headers and body, which go inside the protection). Canonical CRLF in and out.
fn split_message(message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SmimeError> {
    let entity = mime::Entity::parse(message);
    if entity.header("from").is_none() {
        return Err(SmimeError::Message("no From header".into()));
    }
    let mut outer = Vec::new();
    let mut inner = Vec::new();
    // Continuation lines follow the header they belong to.
    let mut to_inner = false;
    for line in entity.header_bytes.split_inclusive(|&b| b == b'\n') {
        if !line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with(b"mime-version:") {
                to_inner = false;
                continue;
            }
            to_inner = lower.starts_with(b"content-");
            if !to_inner {
                outer.extend_from_slice(line);
                continue;
            }
        } else if !to_inner {
            outer.extend_from_slice(line);
            continue;
        }
        inner.extend_from_slice(line);
    }
    if inner.is_empty() {
        inner.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    }
    inner.extend_from_slice(b"\r\n");
    inner.extend_from_slice(entity.body);
    Ok((outer, inner))
}

fn boundary_for(content: &[u8]) -> String {
    // Derived from the content, so it cannot occur inside it in practice.
    let digest = Sha256::digest(content);
    format!(
        "----teleavis-{}",
        hex::encode(digest.get(..12).unwrap_or_default())
    )
}

/// Signs `entity` as a multipart/signed entity (headers + body).
pub fn sign_entity(
    entity: &[u8],
    cert: &X509,
    key: &PKey<Private>,
    chain: &[X509],
) -> Result<Vec<u8>, SmimeError> {
    let mut extra = Stack::new().map_err(ssl("certificate stack"))?;
    for c in chain {
        extra.push(c.clone()).map_err(ssl("certificate stack"))?;
    }
    // BINARY: sign these exact (already canonical) bytes; DETACHED: multipart/signed.
    let flags = CMSOptions::DETACHED | CMSOptions::BINARY;
    let cms = CmsContentInfo::sign(Some(cert), Some(key), Some(&extra), Some(entity), flags)
        .map_err(ssl("signing"))?;
    let der = cms.to_der().map_err(ssl("signature encoding"))?;
    let boundary = boundary_for(entity);
    let mut out = Vec::with_capacity(entity.len() + der.len() * 2 + 512);
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n boundary=\"{boundary}\"\r\n\r\nThis is an S/MIME signed message.\r\n\r\n--{boundary}\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(entity);
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\nContent-Description: S/MIME Cryptographic Signature\r\n\r\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(&mime::encode_base64_lines(&der));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(out)
}

/// Encrypts `entity` to `recipients` as an application/pkcs7-mime entity.
pub fn encrypt_entity(
    entity: &[u8],
    recipients: &[X509],
    gcm: bool,
) -> Result<Vec<u8>, SmimeError> {
    let mut certs = Stack::new().map_err(ssl("recipient stack"))?;
    for c in recipients {
        certs.push(c.clone()).map_err(ssl("recipient stack"))?;
    }
    let (cipher, smime_type) = if gcm {
        (Cipher::aes_256_gcm(), "authEnveloped-data")
    } else {
        (Cipher::aes_256_cbc(), "enveloped-data")
    };
    let cms = CmsContentInfo::encrypt(&certs, entity, cipher, CMSOptions::BINARY)
        .map_err(ssl("encryption"))?;
    let der = cms.to_der().map_err(ssl("encrypted data encoding"))?;
    let mut out = format!(
        "Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\nContent-Description: S/MIME Encrypted Message\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(&mime::encode_base64_lines(&der));
    Ok(out)
}

/// The whole outgoing transformation; see `SmimeEngine::protect`.
pub fn protect(
    message: &[u8],
    signer: (&X509, &PKey<Private>, &[X509]),
    encrypt_to: Option<(&[X509], bool)>,
) -> Result<Vec<u8>, SmimeError> {
    let message = canonical_crlf(message);
    let (outer, inner) = split_message(&message)?;
    let (cert, key, chain) = signer;
    let mut entity = sign_entity(&inner, cert, key, chain)?;
    if let Some((recipients, gcm)) = encrypt_to {
        entity = encrypt_entity(&entity, recipients, gcm)?;
    }
    let mut out = outer;
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out.extend_from_slice(&entity);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_headers_stay_outside() {
        let msg = b"From: a@x.fr\nSubject: [TE-1]\n long\nMIME-Version: 1.0\nContent-Type: text/plain;\n charset=utf-8\nX-Teleavis-Thread: TE-1\n\nbody\n";
        let (outer, inner) = split_message(&canonical_crlf(msg)).unwrap();
        assert_eq!(
            outer,
            b"From: a@x.fr\r\nSubject: [TE-1]\r\n long\r\nX-Teleavis-Thread: TE-1\r\n"
        );
        assert_eq!(
            inner,
            b"Content-Type: text/plain;\r\n charset=utf-8\r\n\r\nbody\r\n"
        );
    }
}
