//! Outgoing protection: signs a message's MIME entity as multipart/signed with the gateway
//! key and, when asked, encrypts it to its recipients and to the gateway itself.

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;

use super::error::SmimeError;
use super::mime;

fn ssl(context: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> SmimeError {
    move |source| SmimeError::OpenSsl { context, source }
}

/// Routing headers, the entity's header block (ending with the blank line), and the body.
type Split<'a> = (Vec<u8>, Vec<u8>, &'a [u8]);

/// Splits a complete message into its routing headers (kept outside) and the header block of
/// its MIME entity (Content-* headers, which go inside the protection), and returns the body
/// as a borrowed slice: the body, often megabytes, is copied once, into the signed entity.
fn split_message(message: &[u8]) -> Result<Split<'_>, SmimeError> {
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
    Ok((outer, inner, entity.body))
}

/// A multipart boundary that occurs nowhere in `body` (random, checked).
fn boundary_for(body: &[u8]) -> String {
    loop {
        let b = format!("----teleavis-{}", hex::encode(rand::random::<[u8; 12]>()));
        if memchr::memmem::find(body, b.as_bytes()).is_none() {
            return b;
        }
    }
}

/// Appends a multipart/signed entity (headers + body) over `headers` + `body` to `out`, signed
/// with the gateway key: the content is written into `out` first and signed where it lies.
fn push_signed(
    out: &mut Vec<u8>,
    headers: &[u8],
    body: &[u8],
    signer: (&X509, &PKey<Private>, &[X509]),
) -> Result<(), SmimeError> {
    let (cert, key, chain) = signer;
    let mut extra = Stack::new().map_err(ssl("certificate stack"))?;
    for c in chain {
        extra.push(c.clone()).map_err(ssl("certificate stack"))?;
    }
    let boundary = boundary_for(body);
    out.extend_from_slice(
        format!(
            "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;\r\n boundary=\"{boundary}\"\r\n\r\nThis is an S/MIME signed message.\r\n\r\n--{boundary}\r\n"
        )
        .as_bytes(),
    );
    let start = out.len();
    out.extend_from_slice(headers);
    out.extend_from_slice(body);
    // BINARY: sign these exact (already canonical) bytes; DETACHED: multipart/signed.
    let flags = CMSOptions::DETACHED | CMSOptions::BINARY;
    let content = out.get(start..).unwrap_or_default();
    let cms = CmsContentInfo::sign(Some(cert), Some(key), Some(&extra), Some(content), flags)
        .map_err(ssl("signing"))?;
    let der = cms.to_der().map_err(ssl("signature encoding"))?;
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\nContent-Description: S/MIME Cryptographic Signature\r\n\r\n"
        )
        .as_bytes(),
    );
    mime::push_base64_lines(out, &der);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(())
}

/// Encrypts `entity` to `recipients`; the DER of the enveloped (or authEnveloped) data and the
/// `smime-type` to label it with.
fn encrypt_der(
    entity: &[u8],
    recipients: &[X509],
    gcm: bool,
) -> Result<(Vec<u8>, &'static str), SmimeError> {
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
    Ok((der, smime_type))
}

/// The whole outgoing transformation; see `SmimeEngine::protect`. Memory: one copy of the
/// content (the signed entity), then the encrypted DER and its base64 form, each buffer freed
/// or reused as soon as the next exists.
pub fn protect(
    message: Vec<u8>,
    signer: (&X509, &PKey<Private>, &[X509]),
    encrypt_to: Option<(&[X509], bool)>,
) -> Result<Vec<u8>, SmimeError> {
    let message = mime::canonical_crlf_owned(message);
    let (mut out, entity_start) = {
        let (outer, headers, body) = split_message(&message)?;
        let mut out = Vec::with_capacity(outer.len() + headers.len() + body.len() + 16 * 1024);
        out.extend_from_slice(&outer);
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
        let entity_start = out.len();
        push_signed(&mut out, &headers, body, signer)?;
        (out, entity_start)
    };
    // The cleartext is now inside `out`: freed before the ciphertext is made.
    drop(message);
    let Some((recipients, gcm)) = encrypt_to else {
        return Ok(out);
    };
    let (der, smime_type) =
        encrypt_der(out.get(entity_start..).unwrap_or_default(), recipients, gcm)?;
    // The signed entity is no longer needed: its buffer is shrunk (realloc, no copy of the
    // routing headers it starts with) and grown again for the base64 of the ciphertext.
    out.truncate(entity_start);
    out.shrink_to_fit();
    out.reserve_exact(der.len() / 57 * 78 + 512);
    out.extend_from_slice(
        format!(
            "Content-Type: application/pkcs7-mime; smime-type={smime_type}; name=\"smime.p7m\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\nContent-Description: S/MIME Encrypted Message\r\n\r\n"
        )
        .as_bytes(),
    );
    mime::push_base64_lines(&mut out, &der);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_headers_stay_outside() {
        let msg = b"From: a@x.fr\nSubject: [TE-1]\n long\nMIME-Version: 1.0\nContent-Type: text/plain;\n charset=utf-8\nX-Teleavis-Thread: TE-1\n\nbody\n";
        let msg = mime::canonical_crlf(msg);
        let (outer, headers, body) = split_message(&msg).unwrap();
        assert_eq!(
            outer,
            b"From: a@x.fr\r\nSubject: [TE-1]\r\n long\r\nX-Teleavis-Thread: TE-1\r\n"
        );
        assert_eq!(
            headers,
            b"Content-Type: text/plain;\r\n charset=utf-8\r\n\r\n"
        );
        assert_eq!(body, b"body\r\n");
    }
}
