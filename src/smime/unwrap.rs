//! Unwraps the S/MIME layers of one message down to its innermost MIME entity: decrypts with
//! the gateway keys and checks every signature cryptographically. No trust decision here
//! (that is `SmimeEngine::authenticate`); this is the pure stage the fuzz target drives.

use std::borrow::Cow;
use std::ops::Range;

use openssl::x509::X509;

use super::cms::{self, CmsKind, DecryptFailure, DecryptionKey, SigFailure};
use super::error::{RejectReason, Rejection};
use super::mime::{self, ContentType, Entity};

/// Nesting deeper than this is refused: real clients use at most three layers.
pub const MAX_DEPTH: usize = 8;

/// One S/MIME layer, outermost first.
#[derive(Clone)]
pub enum Layer {
    /// Signatures that verified over their content; `detached` for multipart/signed.
    Signed {
        signers: Vec<X509>,
        /// The signature value of each signer, in the order of `signers`.
        signatures: Vec<Vec<u8>>,
        certs: Vec<X509>,
        detached: bool,
    },
    /// Data decrypted with one of the gateway keys; `authenticated` for AES-GCM.
    Encrypted { authenticated: bool },
}

/// The result of unwrapping: the innermost entity and the layers around it.
pub struct Unwrapped {
    /// The innermost MIME entity (its own headers and body), canonical CRLF.
    pub content: Vec<u8>,
    pub layers: Vec<Layer>,
}

impl Unwrapped {
    pub fn encrypted(&self) -> bool {
        self.layers
            .iter()
            .any(|l| matches!(l, Layer::Encrypted { .. }))
    }
}

/// Unwraps every layer of `raw` (a complete message or a MIME entity).
pub fn unwrap_layers(raw: &[u8], keys: &[DecryptionKey]) -> Result<Unwrapped, Rejection> {
    let mut layers = Vec::new();
    // Each layer's buffer replaces the one before, so at most two are alive at once.
    let mut current: Cow<'_, [u8]> = mime::canonical_crlf(raw);
    for depth in 0..=MAX_DEPTH {
        match step(&current, keys, depth, layers.is_empty())? {
            Step::Leaf => {
                return Ok(Unwrapped {
                    content: current.into_owned(),
                    layers,
                });
            }
            Step::Inner(layer, inner) => {
                layers.push(layer);
                current = Cow::Owned(mime::canonical_crlf_owned(inner));
            }
            Step::Part(layer, part) => {
                layers.extend(layer);
                current = narrowed(current, part);
            }
        }
    }
    Err(Rejection::new(
        RejectReason::Malformed,
        format!("more than {MAX_DEPTH} nested S/MIME layers"),
    ))
}

enum Step {
    Leaf,
    /// A layer and the content it wrapped (decrypted, or taken out of an opaque signature).
    Inner(Layer, Vec<u8>),
    /// Continue with a part of the current entity, in place: the content of a detached
    /// signature (with its layer), or the one S/MIME part of an outer multipart (without).
    Part(Option<Layer>, Range<usize>),
}

/// The bytes of `part` within `current`, without copying them: a borrowed entity is sliced,
/// an owned one trimmed where it lies. Both are already canonical CRLF.
fn narrowed(current: Cow<'_, [u8]>, part: Range<usize>) -> Cow<'_, [u8]> {
    match current {
        Cow::Borrowed(b) => Cow::Borrowed(b.get(part).unwrap_or_default()),
        Cow::Owned(mut v) => {
            v.truncate(part.end);
            v.drain(..part.start);
            Cow::Owned(v)
        }
    }
}

/// Where `part`, a slice of `whole`, lies in it; an error (never an empty or shifted part) if
/// it does not lie there.
fn range_in(whole: &[u8], part: &[u8], depth: usize) -> Result<Range<usize>, Rejection> {
    let start = part.as_ptr().addr().wrapping_sub(whole.as_ptr().addr());
    let range = start..start.wrapping_add(part.len());
    if range.start <= range.end && range.end <= whole.len() {
        Ok(range)
    } else {
        Err(malformed(depth, "internal: part outside its entity"))
    }
}

fn malformed(depth: usize, what: impl std::fmt::Display) -> Rejection {
    Rejection::new(RejectReason::Malformed, format!("layer {depth}: {what}"))
}

fn is_pkcs7_mime(ct: &ContentType) -> bool {
    ct.is("application/pkcs7-mime")
        || ct.is("application/x-pkcs7-mime")
        // Some clients label the attachment generically; the file name gives it away.
        || (ct.is("application/octet-stream")
            && ct.param("name").is_some_and(|n| n.to_ascii_lowercase().ends_with(".p7m")))
}

fn step(
    entity_raw: &[u8],
    keys: &[DecryptionKey],
    depth: usize,
    outermost: bool,
) -> Result<Step, Rejection> {
    let entity = Entity::parse(entity_raw);
    let ct = entity.content_type();
    if ct.is("multipart/signed") {
        return multipart_signed(entity_raw, &entity, &ct, depth);
    }
    if is_pkcs7_mime(&ct) {
        return pkcs7_mime(&entity, keys, depth);
    }
    if outermost && ct.mime.starts_with("multipart/") {
        // Some clients put smime.p7m in a multipart/mixed, and list servers wrap a signed
        // message in multipart/mixed with a footer. Before any S/MIME layer only, the single
        // S/MIME part is carried on and the parts next to it (unauthenticated) are dropped.
        // Inside a layer, an attached .p7m is content (a forwarded message), not a wrapper.
        let Some(parts) = ct
            .param("boundary")
            .and_then(|b| mime::split_multipart(entity.body, b))
        else {
            return Ok(Step::Leaf);
        };
        let smime: Vec<&[u8]> = parts
            .into_iter()
            .filter(|p| {
                let ct = Entity::parse(p).content_type();
                is_pkcs7_mime(&ct) || ct.is("multipart/signed")
            })
            .collect();
        return match smime.as_slice() {
            [] => Ok(Step::Leaf),
            [one] => Ok(Step::Part(None, range_in(entity_raw, one, depth)?)),
            _ => Err(malformed(depth, "several S/MIME parts side by side")),
        };
    }
    Ok(Step::Leaf)
}

fn multipart_signed(
    entity_raw: &[u8],
    entity: &Entity<'_>,
    ct: &ContentType,
    depth: usize,
) -> Result<Step, Rejection> {
    let boundary = ct
        .param("boundary")
        .ok_or_else(|| malformed(depth, "multipart/signed without boundary"))?;
    let parts = mime::split_multipart(entity.body, boundary)
        .ok_or_else(|| malformed(depth, "multipart/signed without parts"))?;
    let (signed, sig_part) = match parts.as_slice() {
        [signed, sig, ..] => (*signed, Entity::parse(sig)),
        _ => {
            return Err(malformed(
                depth,
                "multipart/signed without a signature part",
            ));
        }
    };
    let sig_ct = sig_part.content_type();
    if !(sig_ct.is("application/pkcs7-signature") || sig_ct.is("application/x-pkcs7-signature")) {
        return Err(malformed(
            depth,
            format!("unsupported signature type {:?}", sig_ct.mime),
        ));
    }
    let der = sig_part.decoded_body().map_err(|e| malformed(depth, e))?;
    if cms::sniff(&der) != Some(CmsKind::Signed) {
        return Err(malformed(depth, "signature part is not CMS signed data"));
    }
    // `signed` is the exact raw bytes of the first part, already canonical CRLF: the form
    // RFC 8551 says is signed. Some signers (NSS's own test corpus among them) sign the LF
    // form instead; the same bytes with LF line ends are accepted too, as Thunderbird does.
    // Either way the content carried on is `signed` itself, in its canonical form.
    let v = match cms::verify_signed(&der, Some(signed)) {
        Err(SigFailure::Tampered(first)) => {
            let lf = mime::crlf_to_lf(signed);
            cms::verify_signed(&der, Some(&lf)).map_err(|_| SigFailure::Tampered(first))
        }
        other => other,
    }
    .map_err(|f| sig_rejection(depth, "detached signature", f))?;
    Ok(Step::Part(
        Some(Layer::Signed {
            signers: v.signers,
            signatures: v.signatures,
            certs: v.certs,
            detached: true,
        }),
        range_in(entity_raw, signed, depth)?,
    ))
}

fn pkcs7_mime(
    entity: &Entity<'_>,
    keys: &[DecryptionKey],
    depth: usize,
) -> Result<Step, Rejection> {
    let der = entity.decoded_body().map_err(|e| malformed(depth, e))?;
    if der.is_empty() {
        return Err(malformed(depth, "empty smime.p7m"));
    }
    match cms::sniff(&der) {
        Some(CmsKind::Signed) => {
            let v = cms::verify_signed(&der, None)
                .map_err(|f| sig_rejection(depth, "opaque signature", f))?;
            Ok(Step::Inner(
                Layer::Signed {
                    signers: v.signers,
                    signatures: v.signatures,
                    certs: v.certs,
                    detached: false,
                },
                v.content,
            ))
        }
        Some(kind @ (CmsKind::Enveloped | CmsKind::AuthEnveloped)) => {
            // Garbage that merely starts like enveloped data is malformed, not "for someone else".
            let plain = cms::decrypt(der, keys).map_err(|f| match f {
                DecryptFailure::Unreadable(e) => {
                    malformed(depth, format!("unreadable encrypted data: {e}"))
                }
                DecryptFailure::NoKey(e) => Rejection::new(
                    RejectReason::CannotDecrypt,
                    format!("layer {depth}: not decryptable with the gateway keys: {e}"),
                ),
            })?;
            Ok(Step::Inner(
                Layer::Encrypted {
                    authenticated: kind == CmsKind::AuthEnveloped,
                },
                plain,
            ))
        }
        Some(CmsKind::Other) => Err(malformed(depth, "unsupported CMS content type")),
        None => Err(malformed(depth, "smime.p7m is not CMS data")),
    }
}

fn sig_rejection(depth: usize, what: &str, f: SigFailure) -> Rejection {
    match f {
        SigFailure::Tampered(s) => Rejection::new(
            RejectReason::Tampered,
            format!("layer {depth}: {what}: content does not match: {s}"),
        ),
        SigFailure::Bad(s) => Rejection::new(
            RejectReason::BadSignature,
            format!("layer {depth}: {what}: {s}"),
        ),
        SigFailure::Malformed(s) => malformed(depth, format!("{what}: {s}")),
    }
}
