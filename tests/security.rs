//! The security policy through a real Postfix and Dovecot, with S/MIME made by `openssl cms`
//! and Python (tests/support/mailtool.py), never by teleavis: every structure a mainstream
//! client sends authenticates; every forged, broken or untrusted message ends in `Quarantaine`
//! with its exact reason, without backscatter to forged addresses; quarantine reprocess after
//! the cause is fixed; certificates learned only from trusted signatures; outgoing ciphers.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{
    MailSystem, compose, header_values, open_as, pki, run_ok, split_message, user_cert, user_email,
    user_key,
};
use gateway::{ADMIN, Db, GATEWAY, Gateway, INFECTIO};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
const TO: &str = "teleexpertise+infectio@hopital.test";

fn case1() -> String {
    std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn cert(name: &str) -> String {
    user_cert(name).to_str().unwrap().to_string()
}

fn key(name: &str) -> String {
    user_key(name).to_str().unwrap().to_string()
}

fn mid(case: &str) -> String {
    format!("<security.{case}@cabinet.test>")
}

/// How a test message is made with mailtool compose.
struct Make<'a> {
    /// PKI user whose key signs (None: unsigned).
    signer: Option<&'a str>,
    /// The From header (default: the signer's address).
    from: Option<&'a str>,
    /// PKI user the message is encrypted to (None: not encrypted).
    encrypt_to: Option<&'a str>,
    extra: &'a [&'a str],
}

impl Default for Make<'_> {
    fn default() -> Self {
        Make {
            signer: Some("gp"),
            from: None,
            encrypt_to: Some("gateway"),
            extra: &[],
        }
    }
}

/// A request whose signed text names its case: the same text signed by the same key in the
/// same second has the same signature, so without it two cases would be one message (a replay).
fn make(case: &str, m: Make<'_>) -> Vec<u8> {
    let body = format!("{}\n-- \nRéf. {case}\n", case1());
    let from = m
        .from
        .map(str::to_string)
        .unwrap_or_else(|| user_email(m.signer.expect("a From or a signer")));
    let subject = format!("Demande d'avis ({case})");
    let message_id = mid(case);
    let (c, k) = m.signer.map(|s| (cert(s), key(s))).unzip();
    let e = m.encrypt_to.map(cert);
    let mut args: Vec<&str> = vec![
        "--from",
        &from,
        "--to",
        TO,
        "--subject",
        &subject,
        "--body",
        &body,
        "--message-id",
        &message_id,
    ];
    if let (Some(c), Some(k)) = (&c, &k) {
        args.extend(["--sign", c.as_str(), k.as_str()]);
    }
    if let Some(e) = &e {
        args.extend(["--encrypt-to", e.as_str()]);
    }
    args.extend_from_slice(m.extra);
    compose(&args)
}

/// Runs a Python script with `raw` on stdin; returns its stdout.
fn python(script: &str, raw: &[u8]) -> Vec<u8> {
    let py = std::env::var("TELEAVIS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    run_ok(Command::new(py).arg("-c").arg(script), Some(raw))
}

/// Replaces the first `from` in the header block only (never in the body).
fn rewrite_header(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let (head, body) = split_message(raw);
    let head = String::from_utf8(head.to_vec()).unwrap();
    assert!(
        head.contains(from),
        "{from:?} not in the header block:\n{head}"
    );
    let mut out = head.replacen(from, to, 1).into_bytes();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The signature part (second part) of a multipart/signed message gets a legacy content type;
/// the signed first part is left untouched.
fn legacy_signature_type(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    let needle = "Content-Type: application/pkcs7-signature";
    let at = text.rfind(needle).expect("a signature part");
    let mut out = text[..at].replace(
        "protocol=\"application/pkcs7-signature\"",
        "protocol=\"application/x-pkcs7-signature\"",
    );
    out.push_str("Content-Type: application/x-pkcs7-signature");
    out.push_str(&text[at + needle.len()..]);
    out.into_bytes()
}

/// The composed message's S/MIME entity as a `smime.p7m` attachment inside a
/// multipart/mixed with a text part next to it, built with Python's `email`.
fn p7m_inside_multipart_mixed(raw: &[u8]) -> Vec<u8> {
    const SCRIPT: &str = r#"
import sys, email, email.policy
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.mime.base import MIMEBase
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.compat32)
assert m.get_content_type() == "application/pkcs7-mime", m.get_content_type()
outer = MIMEMultipart("mixed")
for h in ("From", "To", "Subject", "Date", "Message-ID"):
    outer[h] = m[h]
outer.attach(MIMEText("Message sécurisé en pièce jointe.", "plain", "utf-8"))
p = MIMEBase("application", "pkcs7-mime", name="smime.p7m")
p.set_param("smime-type", m.get_param("smime-type"))
p["Content-Transfer-Encoding"] = "base64"
p["Content-Disposition"] = 'attachment; filename="smime.p7m"'
p.set_payload(m.get_payload().replace("\r\n", "\n"))
outer.attach(p)
sys.stdout.buffer.write(outer.as_bytes(policy=email.policy.SMTP))
"#;
    python(SCRIPT, raw)
}

/// The base64 body of a single-part message, decoded.
fn decode_body(raw: &[u8]) -> Vec<u8> {
    let (_, body) = split_message(raw);
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .expect("base64 body")
}

fn with_body(raw: &[u8], body: &[u8]) -> Vec<u8> {
    let (head, _) = split_message(raw);
    let mut out = head.to_vec();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn base64_lines(der: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(64) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A byte of the patient's name flipped inside the signed content of an opaque signature.
fn tamper_opaque(raw: &[u8]) -> Vec<u8> {
    let mut der = decode_body(raw);
    let at = find(&der, b"Nom : MARTIN").expect("the signed text inside the DER") + 6;
    der[at] ^= 0x01;
    with_body(raw, &base64_lines(&der))
}

/// A byte of the text flipped in the first (signed) part of a multipart/signed message.
fn tamper_detached(raw: &[u8]) -> Vec<u8> {
    let (head, body) = split_message(raw);
    let at = find(body, b"Nom : MARTIN").expect("the signed text in the first part") + 6;
    let mut body = body.to_vec();
    body[at] ^= 0x01;
    let mut out = head.to_vec();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// The base64 body cut in the middle of a line (length not a multiple of 4).
fn truncate_base64(raw: &[u8]) -> Vec<u8> {
    let (_, body) = split_message(raw);
    let mut cut = body[..body.len() / 2].to_vec();
    while cut.last().is_some_and(|b| b.is_ascii_whitespace()) {
        cut.pop();
    }
    let chars = cut.iter().filter(|b| !b.is_ascii_whitespace()).count();
    if chars % 4 == 0 {
        cut.pop();
    }
    cut.extend_from_slice(b"\r\n");
    with_body(raw, &cut)
}

/// A single-part `smime.p7m` message whose body is `der` (base64).
fn p7m_message(case: &str, der: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "From: {}\r\nTo: {TO}\r\nSubject: Demande d'avis ({case})\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: {}\r\nMIME-Version: 1.0\r\n\
         Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\
         Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
        user_email("gp"),
        mid(case)
    )
    .into_bytes();
    out.extend_from_slice(&base64_lines(der));
    out
}

/// Sends a message as its From address would (envelope sender = From).
fn send(mail: &MailSystem, raw: &[u8]) {
    let from = header_values(raw, "From").remove(0);
    let from = from
        .rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>').to_string())
        .unwrap_or(from);
    mail.send_raw(&from, &[TO], raw);
}

/// The inbound row of a message once its outcome is committed.
fn wait_outcome(gw: &Gateway, message_id: &str) -> teleavis::store::InboundMeta {
    gw.wait_until(&format!("the outcome of {message_id}"), T, || {
        let rows = rt().block_on(async {
            gw.store()
                .await
                .find_inbound_by_message_id(message_id)
                .await
                .unwrap()
        });
        rows.into_iter()
            .next()
            .filter(|r| r.outcome != "received" && r.destination.is_some())
    })
}

/// Checks an acknowledgement as the GP's client would: signed by the gateway (openssl
/// verifies against the test CA), encrypted to the GP, naming the thread.
fn check_ack(user: &str, raw: &[u8], what: &str) -> Value {
    let opened = open_as(user, raw);
    assert_eq!(opened["verified"], true, "{what}: ack signature");
    assert_eq!(opened["encrypted"], true, "{what}: ack encrypted");
    assert_eq!(
        opened["signed_by"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase(),
        GATEWAY,
        "{what}: ack signer"
    );
    let tid = header_values(raw, "X-Teleavis-Thread").join("");
    assert!(tid.starts_with("TE-"), "{what}: no thread header");
    assert!(
        opened["text"].as_str().unwrap_or_default().contains(&tid),
        "{what}: the ack names {tid}"
    );
    opened
}

fn count_files_with(dir: &std::path::Path, needle: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .contains(needle)
                })
                .count()
        })
        .unwrap_or(0)
}

// ------------------------------------------------------------------------------------------
// 1. Every structure a client sends authenticates and opens a thread.

#[test]
fn every_incoming_structure_authenticates_and_opens_a_thread() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let gp = user_email("gp");
    // The GP's certificate is not placed anywhere: it can only be learned from their mail.
    let recipients = pki().join("recipients");
    let gp_cert_pem = std::fs::read_to_string(user_cert("gp")).unwrap();
    let gp_b64_line = gp_cert_pem.lines().nth(3).unwrap().to_string();
    assert_eq!(
        count_files_with(&recipients, &gp_b64_line),
        0,
        "gp.crt must not be in recipients_dir"
    );

    let d = Make::default;
    let gp_cert = cert("gp");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "detached_sign_encrypt_gcm",
            make("detached_sign_encrypt_gcm", d()),
        ),
        (
            "opaque_sign_encrypt",
            make(
                "opaque_sign_encrypt",
                Make {
                    extra: &["--opaque"],
                    ..d()
                },
            ),
        ),
        (
            "detached_encrypt_sign",
            make(
                "detached_encrypt_sign",
                Make {
                    extra: &["--order", "encrypt-sign"],
                    ..d()
                },
            ),
        ),
        (
            "opaque_encrypt_sign",
            make(
                "opaque_encrypt_sign",
                Make {
                    extra: &["--order", "encrypt-sign", "--opaque"],
                    ..d()
                },
            ),
        ),
        (
            "triple_wrapped",
            make(
                "triple_wrapped",
                Make {
                    extra: &["--order", "sign-encrypt-sign"],
                    ..d()
                },
            ),
        ),
        (
            "triple_wrapped_opaque",
            make(
                "triple_wrapped_opaque",
                Make {
                    extra: &["--order", "sign-encrypt-sign", "--opaque"],
                    ..d()
                },
            ),
        ),
        (
            "cbc",
            make(
                "cbc",
                Make {
                    extra: &["--cipher", "aes-256-cbc"],
                    ..d()
                },
            ),
        ),
        (
            "cbc_opaque",
            make(
                "cbc_opaque",
                Make {
                    extra: &["--cipher", "aes-256-cbc", "--opaque"],
                    ..d()
                },
            ),
        ),
        (
            "p7m_in_multipart_mixed",
            p7m_inside_multipart_mixed(&make("p7m_in_multipart_mixed", d())),
        ),
        (
            "legacy_x_pkcs7_mime",
            rewrite_header(
                &make("legacy_x_pkcs7_mime", d()),
                "Content-Type: application/pkcs7-mime",
                "Content-Type: application/x-pkcs7-mime",
            ),
        ),
        (
            "legacy_x_pkcs7_mime_signed_outside",
            rewrite_header(
                &make(
                    "legacy_x_pkcs7_mime_signed_outside",
                    Make {
                        extra: &["--order", "encrypt-sign", "--opaque"],
                        ..d()
                    },
                ),
                "Content-Type: application/pkcs7-mime",
                "Content-Type: application/x-pkcs7-mime",
            ),
        ),
        (
            "legacy_x_pkcs7_signature",
            legacy_signature_type(&make(
                "legacy_x_pkcs7_signature",
                Make {
                    extra: &["--order", "encrypt-sign"],
                    ..d()
                },
            )),
        ),
        // As Thunderbird and Outlook send: a display name, and encrypted to the sender too.
        (
            "display_name_and_self_copy",
            make(
                "display_name_and_self_copy",
                Make {
                    from: Some("\"Dr Olivier Martin\" <dr.martin@cabinet.test>"),
                    extra: &["--encrypt-to", &gp_cert],
                    ..d()
                },
            ),
        ),
    ];
    // sanity of the rewrites: the legacy types are really there
    for (name, raw) in &cases {
        let text = String::from_utf8_lossy(raw);
        if name.starts_with("legacy_x_pkcs7_mime") {
            assert!(text.contains("application/x-pkcs7-mime"), "{name}");
        }
        if *name == "legacy_x_pkcs7_signature" {
            assert!(
                text.contains("Content-Type: application/x-pkcs7-signature")
                    && !text.contains("Content-Type: application/pkcs7-signature"),
                "{name}"
            );
        }
        if *name == "p7m_in_multipart_mixed" {
            assert!(
                text.contains("multipart/mixed") && text.contains("smime.p7m"),
                "{name}"
            );
        }
    }

    let mut failures = Vec::new();
    for (i, (name, raw)) in cases.iter().enumerate() {
        send(&mail, raw);
        let row = wait_outcome(&gw, &mid(name));
        if row.outcome != "processed" || row.thread_id.is_none() {
            failures.push(format!(
                "{name}: outcome {} reason {:?} detail {:?} thread {:?}",
                row.outcome, row.reason, row.detail, row.thread_id
            ));
        }
        assert_eq!(
            gw.threads().len(),
            i + 1 - failures.len(),
            "{name}: thread count"
        );
    }
    assert!(
        failures.is_empty(),
        "structures not accepted:\n{}\n--- log\n{}",
        failures.join("\n"),
        gw.log()
    );
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", cases.len(), T),
        "{}",
        gw.log()
    );
    assert_eq!(mail.count(GATEWAY, "Quarantaine"), 0);
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0, "INBOX must end empty");

    // One acknowledgement per request, each verified by openssl: signed by the gateway and
    // encrypted to the certificate learned from the GP's signature (GCM by default).
    assert!(
        mail.wait_for_count(&gp, "INBOX", cases.len(), T),
        "acknowledgements missing:\n{}",
        gw.log()
    );
    let acks = mail.fetch(&gp, "INBOX");
    assert_eq!(acks.len(), cases.len());
    let threads: Vec<String> = gw
        .threads()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    let mut acked = Vec::new();
    for (i, ack) in acks.iter().enumerate() {
        let opened = check_ack("gp", ack, &format!("ack #{i}"));
        assert_eq!(
            opened["smime_type"], "authEnveloped-data",
            "ack #{i}: the default cipher is AES-256-GCM"
        );
        acked.push(header_values(ack, "X-Teleavis-Thread").join(""));
    }
    acked.sort();
    let mut expected = threads.clone();
    expected.sort();
    assert_eq!(acked, expected, "one acknowledgement per thread");
    for t in gw.threads() {
        assert_eq!(
            t["requester"].as_str().unwrap().to_lowercase(),
            gp,
            "requester of {}",
            t["id"]
        );
        assert_eq!(t["category"], "infectio");
    }
    // The learned certificate is exactly the GP's.
    let learned = rt().block_on(async {
        let addr = teleavis::address::EmailAddress::parse(&gp).unwrap();
        gw.store().await.recipient_certificate(&addr).await.unwrap()
    });
    let (der, _) = learned.expect("the GP's certificate is learned from the signature");
    let gp_der = openssl::x509::X509::from_pem(gp_cert_pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(der, gp_der, "the learned certificate is the signer's");
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", cases.len(), T),
        "forwards missing:\n{}",
        gw.log()
    );
    gw.stop();
}

// ------------------------------------------------------------------------------------------
// 2. Negative cases: each one in Quarantaine with its exact reason; the daemon survives.

struct Negative {
    name: &'static str,
    raw: Vec<u8>,
    reason: &'static str,
}

/// A request signed by the GP with a second From header naming someone else, before or
/// after the real one (RFC 5322 allows exactly one).
fn two_from(case: &str, forged_first: bool) -> Vec<u8> {
    let raw = make(case, Make::default());
    if forged_first {
        let mut out = b"From: dr.bua@cabinet.test\r\n".to_vec();
        out.extend(raw);
        out
    } else {
        rewrite_header(
            &raw,
            "MIME-Version: 1.0",
            "From: dr.bua@cabinet.test\r\nMIME-Version: 1.0",
        )
    }
}

/// The signature value (the last bytes of the only SignerInfo) of an opaque signature
/// changed: the content digest still matches, the signature does not.
fn bad_signature_value(raw: &[u8]) -> Vec<u8> {
    let mut der = decode_body(raw);
    let last = der.len() - 1;
    der[last] ^= 0x01;
    with_body(raw, &base64_lines(&der))
}

/// `depth` opaque signatures by the GP one inside the other, made with `openssl cms`.
fn nested_signatures(case: &str, depth: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("entity");
    let mut entity = b"Content-Type: text/plain; charset=utf-8\r\n\r\nNom : MARTIN\r\n".to_vec();
    for _ in 0..depth {
        std::fs::write(&file, &entity).unwrap();
        let out = run_ok(
            Command::new("openssl")
                .args([
                    "cms",
                    "-sign",
                    "-binary",
                    "-crlfeol",
                    "-nodetach",
                    "-md",
                    "sha256",
                    "-signer",
                    &cert("gp"),
                    "-inkey",
                    &key("gp"),
                    "-in",
                ])
                .arg(&file),
            None,
        );
        let text = String::from_utf8(out)
            .unwrap()
            .replace("\r\n", "\n")
            .replace('\n', "\r\n");
        entity = text
            .lines()
            .filter(|l| !l.starts_with("MIME-Version:"))
            .collect::<Vec<_>>()
            .join("\r\n")
            .into_bytes();
        entity.extend_from_slice(b"\r\n");
    }
    let mut out = format!(
        "From: {}\r\nTo: {TO}\r\nSubject: Demande d'avis ({case})\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: {}\r\nMIME-Version: 1.0\r\n",
        user_email("gp"),
        mid(case)
    )
    .into_bytes();
    out.extend(entity);
    out
}

fn negatives() -> Vec<Negative> {
    let d = Make::default;
    let signed_only = |case: &str, extra: &'static [&'static str]| {
        make(
            case,
            Make {
                encrypt_to: None,
                extra,
                ..d()
            },
        )
    };
    // garbage that starts like a ContentInfo with the enveloped-data OID, then junk
    let mut fake_enveloped = vec![
        0x30, 0x82, 0x01, 0x00, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
    ];
    fake_enveloped.extend((0..240u32).map(|i| (i * 37 % 251) as u8));
    vec![
        Negative {
            name: "untrusted",
            raw: make(
                "untrusted",
                Make {
                    signer: Some("otherca"),
                    ..d()
                },
            ),
            reason: "untrusted",
        },
        Negative {
            name: "expired",
            raw: make(
                "expired",
                Make {
                    signer: Some("expired"),
                    ..d()
                },
            ),
            reason: "expired",
        },
        Negative {
            name: "revoked",
            raw: make(
                "revoked",
                Make {
                    signer: Some("revoked"),
                    ..d()
                },
            ),
            reason: "revoked",
        },
        Negative {
            name: "nousage",
            raw: make(
                "nousage",
                Make {
                    signer: Some("nousage"),
                    ..d()
                },
            ),
            reason: "wrong_usage",
        },
        Negative {
            name: "from_mismatch",
            raw: make(
                "from_mismatch",
                Make {
                    from: Some("dr.bua@cabinet.test"),
                    ..d()
                },
            ),
            reason: "from_mismatch",
        },
        Negative {
            name: "tampered_opaque",
            raw: tamper_opaque(&signed_only("tampered_opaque", &["--opaque"])),
            reason: "tampered",
        },
        Negative {
            name: "tampered_detached",
            raw: tamper_detached(&signed_only("tampered_detached", &[])),
            reason: "tampered",
        },
        Negative {
            name: "truncated_base64",
            raw: truncate_base64(&make("truncated_base64", d())),
            reason: "malformed",
        },
        Negative {
            name: "other_recipient",
            raw: make(
                "other_recipient",
                Make {
                    encrypt_to: Some("gp2"),
                    ..d()
                },
            ),
            reason: "cannot_decrypt",
        },
        Negative {
            name: "garbage_der",
            raw: p7m_message("garbage_der", b"\x01\x02 this is not DER at all \xff\xfe"),
            reason: "malformed",
        },
        Negative {
            name: "garbage_der_enveloped_oid",
            raw: p7m_message("garbage_der_enveloped_oid", &fake_enveloped),
            reason: "malformed",
        },
        Negative {
            name: "empty_p7m",
            raw: p7m_message("empty_p7m", b""),
            reason: "malformed",
        },
        Negative {
            name: "not_encrypted",
            raw: signed_only("not_encrypted", &[]),
            reason: "not_encrypted",
        },
        Negative {
            name: "not_encrypted_opaque",
            raw: signed_only("not_encrypted_opaque", &["--opaque"]),
            reason: "not_encrypted",
        },
        Negative {
            name: "unsigned",
            raw: make(
                "unsigned",
                Make {
                    signer: None,
                    from: Some("inconnu@cabinet.test"),
                    encrypt_to: None,
                    extra: &[],
                },
            ),
            reason: "unsigned",
        },
        Negative {
            name: "unsigned_encrypted",
            raw: make(
                "unsigned_encrypted",
                Make {
                    signer: None,
                    from: Some("inconnu@cabinet.test"),
                    ..d()
                },
            ),
            reason: "unsigned",
        },
        Negative {
            name: "two_from_forged_first",
            raw: two_from("two_from_forged_first", true),
            reason: "malformed",
        },
        Negative {
            name: "two_from_forged_last",
            raw: two_from("two_from_forged_last", false),
            reason: "malformed",
        },
        Negative {
            name: "bad_signature_value",
            raw: bad_signature_value(&signed_only("bad_signature_value", &["--opaque"])),
            reason: "bad_signature",
        },
        Negative {
            name: "nested_too_deep",
            raw: nested_signatures("nested_too_deep", 10),
            reason: "malformed",
        },
        // the same construction, shallow: valid (refused only because it is not encrypted),
        // so the deep one is refused for its depth
        Negative {
            name: "nested_three_deep",
            raw: nested_signatures("nested_three_deep", 3),
            reason: "not_encrypted",
        },
        Negative {
            name: "auto_replied",
            raw: make(
                "auto_replied",
                Make {
                    extra: &["--header", "Auto-Submitted: auto-replied"],
                    ..d()
                },
            ),
            reason: "automatic",
        },
    ]
}

#[test]
fn every_negative_case_is_quarantined_with_its_reason_and_the_daemon_survives() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let cases = negatives();
    for c in &cases {
        send(&mail, &c.raw);
    }
    assert!(
        mail.wait_for_count(GATEWAY, "Quarantaine", cases.len(), T),
        "not all in Quarantaine: {:?}\n{}",
        mail.counts(GATEWAY),
        gw.log()
    );
    let rows = gw.quarantine();
    let mut wrong = Vec::new();
    for c in &cases {
        let want_mid = mid(c.name);
        match rows.iter().find(|r| r["message_id"] == want_mid.as_str()) {
            None => wrong.push(format!("{}: no quarantine row", c.name)),
            Some(r) if r["reason"] != c.reason => wrong.push(format!(
                "{}: reason {} (want {}), detail {}",
                c.name, r["reason"], c.reason, r["detail"]
            )),
            Some(r) => {
                assert!(
                    r["detail"].as_str().is_some_and(|d| !d.is_empty()),
                    "{}: empty detail",
                    c.name
                );
                assert!(
                    r["id"].as_i64().is_some() && r["received_at"].as_str().is_some(),
                    "{}: {r}",
                    c.name
                );
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "wrong quarantine outcomes:\n{}\n--- log\n{}",
        wrong.join("\n"),
        gw.log()
    );
    let deep = rows
        .iter()
        .find(|r| r["message_id"] == mid("nested_too_deep").as_str())
        .unwrap();
    assert!(
        deep["detail"].as_str().unwrap().contains("nested"),
        "refused for its depth: {deep}"
    );
    assert_eq!(rows.len(), cases.len(), "one quarantine row per message");
    assert_eq!(mail.count(GATEWAY, "Traités"), 0, "nothing processed");
    assert_eq!(gw.threads().len(), 0, "no thread from a rejected message");
    assert!(
        gw.is_running(),
        "the daemon died on hostile input:\n{}",
        gw.log()
    );

    // No signer that failed the policy teaches a certificate.
    let unlearned = rt().block_on(async {
        let store = gw.store().await;
        let mut learned = Vec::new();
        for user in ["otherca", "expired", "revoked", "nousage", "gp2"] {
            let addr = teleavis::address::EmailAddress::parse(&user_email(user)).unwrap();
            if store.recipient_certificate(&addr).await.unwrap().is_some() {
                learned.push(user);
            }
        }
        learned
    });
    assert!(
        unlearned.is_empty(),
        "certificates learned from refused signers: {unlearned:?}"
    );

    // The admin is alerted about each one, except the automatic message (never answered).
    let alerts = cases.len() - 1;
    assert!(
        mail.wait_for_count(ADMIN, "INBOX", alerts, T),
        "admin alerts: {} of {alerts}\n{}",
        mail.count(ADMIN, "INBOX"),
        gw.log()
    );

    // Still alive and useful: a good request goes through.
    send(&mail, &make("good_after_negatives", Make::default()));
    let row = wait_outcome(&gw, &mid("good_after_negatives"));
    assert_eq!(row.outcome, "processed", "{row:?}\n{}", gw.log());
    assert_eq!(gw.threads().len(), 1);
    assert!(mail.wait_for_count(GATEWAY, "Traités", 1, T));
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0, "INBOX must end empty");
    assert_eq!(mail.count(GATEWAY, "Quarantaine"), cases.len());
    assert!(gw.is_running());
    let audit = gw.cli(&["audit", "verify"]);
    assert!(audit.status.success(), "{audit:?}");

    // The GP is told thrice (the three valid, From-matching signatures that were not encrypted)
    // and acknowledged once; nobody else is answered; the admin got no alert for the
    // auto-reply.
    let gp = user_email("gp");
    assert!(mail.wait_for_count(&gp, "INBOX", 4, T), "{}", gw.log());
    std::thread::sleep(Duration::from_secs(3));
    let mut told = Vec::new();
    for m in mail.fetch(&gp, "INBOX") {
        let opened = open_as("gp", &m);
        let text = opened["text"].as_str().unwrap_or_default();
        told.push(if text.contains("(code : not_encrypted)") {
            "not_encrypted".to_string()
        } else if header_values(&m, "X-Teleavis-Thread").is_empty() {
            format!("other: {text}")
        } else {
            "ack".to_string()
        });
    }
    told.sort();
    assert_eq!(
        told,
        ["ack", "not_encrypted", "not_encrypted", "not_encrypted"],
        "what the GP received"
    );
    for user in ["otherca", "expired", "revoked", "nousage", "gp2"] {
        assert_eq!(
            mail.count(&user_email(user), "INBOX"),
            0,
            "backscatter to {user}"
        );
    }
    assert_eq!(
        mail.count("inconnu@cabinet.test", "INBOX"),
        0,
        "backscatter to inconnu"
    );
    assert_eq!(
        mail.count(ADMIN, "INBOX"),
        alerts,
        "exactly one alert per quarantined message except automatic"
    );
    gw.stop();
}

#[test]
fn oversized_message_is_quarantined() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start_with_env(&[("TELEAVIS__LIMITS__MAX_MESSAGE_BYTES", "20000")]);
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("resultats.pdf");
    // 30 kB that do not compress away (the limit is on the raw message)
    let data: Vec<u8> = (0..30_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&pdf, data).unwrap();
    let attach = format!("{}:application/pdf", pdf.display());
    let big = make(
        "oversized",
        Make {
            extra: &["--attach", &attach],
            ..Make::default()
        },
    );
    assert!(big.len() > 30_000);
    send(&mail, &big);
    let small = make("small_enough", Make::default());
    assert!(
        small.len() < 20_000,
        "the small request is {} bytes",
        small.len()
    );
    send(&mail, &small);
    let row = wait_outcome(&gw, &mid("oversized"));
    assert_eq!(
        (row.outcome.as_str(), row.reason.as_deref()),
        ("quarantined", Some("oversized")),
        "{row:?}"
    );
    let q = gw.quarantine();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["reason"], "oversized");
    let row = wait_outcome(&gw, &mid("small_enough"));
    assert_eq!(row.outcome, "processed", "{row:?}");
    assert!(mail.wait_for_count(GATEWAY, "Quarantaine", 1, T));
    assert!(mail.wait_for_count(GATEWAY, "Traités", 1, T));
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0);
    assert!(gw.is_running());
    gw.stop();
}

// ------------------------------------------------------------------------------------------
// 3. Backscatter: only an authenticated sender is told; the admin always is.

#[test]
fn only_authenticated_senders_are_told_and_the_admin_is_alerted() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let gp = user_email("gp");
    // The GP's first message ever: the gateway knows no certificate of theirs yet.
    let cases = [
        (
            "bs_not_encrypted",
            // a Reply-To elsewhere: the notice goes to the authenticated From only
            make(
                "bs_not_encrypted",
                Make {
                    encrypt_to: None,
                    extra: &["--header", "Reply-To: secretariat@cabinet.test"],
                    ..Make::default()
                },
            ),
        ),
        (
            "bs_from_mismatch",
            make(
                "bs_from_mismatch",
                Make {
                    from: Some("dr.bua@cabinet.test"),
                    ..Make::default()
                },
            ),
        ),
        (
            "bs_untrusted",
            make(
                "bs_untrusted",
                Make {
                    signer: Some("otherca"),
                    ..Make::default()
                },
            ),
        ),
        (
            "bs_unsigned",
            make(
                "bs_unsigned",
                Make {
                    signer: None,
                    from: Some("inconnu@cabinet.test"),
                    ..Make::default()
                },
            ),
        ),
    ];
    for (_, raw) in &cases {
        send(&mail, raw);
    }
    let mut reasons = Vec::new();
    for (name, _) in &cases {
        let row = wait_outcome(&gw, &mid(name));
        assert_eq!(row.outcome, "quarantined", "{name}");
        reasons.push(row.reason.unwrap());
    }
    assert_eq!(
        reasons,
        ["not_encrypted", "from_mismatch", "untrusted", "unsigned"]
    );

    // The GP, whose signature was valid, is told why, signed and encrypted.
    assert!(
        mail.wait_for_count(&gp, "INBOX", 1, T),
        "no notice to the authenticated sender:\n{}",
        gw.log()
    );
    let notice = mail.fetch(&gp, "INBOX").remove(0);
    let opened = open_as("gp", &notice);
    assert_eq!(opened["verified"], true);
    assert_eq!(opened["encrypted"], true);
    assert_eq!(
        opened["signed_by"].as_str().unwrap().to_lowercase(),
        GATEWAY
    );
    let text = opened["text"].as_str().unwrap();
    assert!(
        text.contains("n'est pas chiffré"),
        "the reason in French:\n{text}"
    );
    assert!(text.contains("not_encrypted"), "the code:\n{text}");
    assert_eq!(
        header_values(&notice, "Auto-Submitted"),
        vec!["auto-generated"]
    );
    assert_eq!(
        header_values(&notice, "In-Reply-To"),
        vec![mid("bs_not_encrypted")]
    );

    // The admin gets an alert for each, naming the reason code.
    assert!(
        mail.wait_for_count(ADMIN, "INBOX", cases.len(), T),
        "admin alerts missing:\n{}",
        gw.log()
    );
    let mut alerted = Vec::new();
    for alert in mail.fetch(ADMIN, "INBOX") {
        let opened = open_as("admin", &alert);
        assert_eq!(opened["verified"], true);
        let text = opened["text"].as_str().unwrap_or_default().to_string();
        let subject = header_values(&alert, "Subject").join(" ");
        for code in ["not_encrypted", "from_mismatch", "untrusted", "unsigned"] {
            if text.contains(&format!("Motif : {code}")) {
                alerted.push(code.to_string());
                assert!(
                    subject.contains(code),
                    "alert subject {subject:?} names {code}"
                );
            }
        }
    }
    alerted.sort();
    assert_eq!(
        alerted,
        ["from_mismatch", "not_encrypted", "unsigned", "untrusted"],
        "one alert per reason"
    );

    // Nobody at a forged or unproven From address (or a Reply-To) receives anything.
    std::thread::sleep(Duration::from_secs(5));
    for addr in [
        "dr.bua@cabinet.test",
        "autre@cabinet.test",
        "inconnu@cabinet.test",
        "secretariat@cabinet.test",
    ] {
        assert_eq!(mail.count(addr, "INBOX"), 0, "backscatter to {addr}");
    }
    assert_eq!(mail.count(&gp, "INBOX"), 1, "exactly one notice to the GP");
    gw.stop();
}

// ------------------------------------------------------------------------------------------
// 4 and 5. Reprocess after the cause is fixed; untrusted signers teach no certificate.

/// Points the gateway's `key` folder (`trust_anchors`, `recipients_dir`) at a private copy of
/// the PKI's `folder`, filled by `fill`: the PKI is shared by the tests of this process, and
/// changing a file there must not change the others.
fn private_folder(gw: &Gateway, key: &str, folder: &str, fill: impl FnOnce(&Path)) -> PathBuf {
    let dir = gw.dir.path().join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    fill(&dir);
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let line = format!("{key} = \"{}/{folder}\"", pki().display());
    assert!(text.contains(&line), "no {line} in the configuration");
    std::fs::write(
        &gw.config,
        text.replace(&line, &format!("{key} = \"{}\"", dir.display())),
    )
    .unwrap();
    dir
}

/// A private copy of the trust anchors, so that a test may add one.
fn private_trust_folder(gw: &Gateway) -> PathBuf {
    private_folder(gw, "trust_anchors", "trust", |dir| {
        for e in std::fs::read_dir(pki().join("trust")).unwrap().flatten() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    })
}

#[test]
fn quarantine_show_and_reprocess_after_the_trust_anchor_is_added() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let trust = private_trust_folder(&gw);
    gw.start();
    let autre = user_email("otherca");
    send(
        &mail,
        &make(
            "from_other_ca",
            Make {
                signer: Some("otherca"),
                ..Make::default()
            },
        ),
    );
    let row = wait_outcome(&gw, &mid("from_other_ca"));
    assert_eq!(
        (row.outcome.as_str(), row.reason.as_deref()),
        ("quarantined", Some("untrusted")),
        "{row:?}"
    );
    assert!(mail.wait_for_count(GATEWAY, "Quarantaine", 1, T));
    let q = gw.quarantine();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["reason"], "untrusted");
    assert_eq!(q[0]["from"].as_str().unwrap().to_lowercase(), autre);
    let id = q[0]["id"].as_i64().unwrap().to_string();

    let show = gw.cli(&["quarantine", "show", &id]);
    assert!(show.status.success(), "{show:?}");
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(
        shown.contains("untrusted"),
        "show prints the reason:\n{shown}"
    );
    assert!(
        shown.contains("autorité de confiance"),
        "show explains it:\n{shown}"
    );
    assert!(shown.contains(&mid("from_other_ca")), "{shown}");

    // 5. An untrusted signature teaches nothing.
    let autre_addr = teleavis::address::EmailAddress::parse(&autre).unwrap();
    let learned = rt().block_on(async {
        gw.store()
            .await
            .recipient_certificate(&autre_addr)
            .await
            .unwrap()
    });
    assert!(
        learned.is_none(),
        "a certificate was learned from an untrusted signature"
    );
    assert_eq!(gw.threads().len(), 0);
    assert_eq!(
        mail.count(&autre, "INBOX"),
        0,
        "no backscatter to the untrusted sender"
    );

    // The operator trusts the other CA, then reprocesses.
    std::fs::copy(pki().join("other-ca.crt"), trust.join("other-ca.crt")).unwrap();
    let out = gw.cli(&["quarantine", "reprocess", &id]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "reprocess failed: {out:?}");
    assert!(stdout.contains("processed"), "{stdout}");
    let threads = gw.threads();
    assert_eq!(threads.len(), 1, "{stdout}");
    assert_eq!(
        threads[0]["requester"].as_str().unwrap().to_lowercase(),
        autre
    );
    let tid = threads[0]["id"].as_str().unwrap().to_string();
    assert!(stdout.contains(&tid), "{stdout}");
    let row = wait_outcome(&gw, &mid("from_other_ca"));
    assert_eq!(
        row.outcome, "processed",
        "the same row records the new outcome: {row:?}"
    );
    assert!(gw.quarantine().is_empty(), "no longer listed in quarantine");
    let learned = rt().block_on(async {
        gw.store()
            .await
            .recipient_certificate(&autre_addr)
            .await
            .unwrap()
    });
    assert!(learned.is_some(), "the now-trusted certificate is learned");

    // The running daemon's outbox sends the acknowledgement (and the forward).
    assert!(
        mail.wait_for_count(&autre, "INBOX", 1, T),
        "no acknowledgement after reprocess:\n{}",
        gw.log()
    );
    let ack = mail.fetch(&autre, "INBOX").remove(0);
    assert_eq!(header_values(&ack, "X-Teleavis-Thread"), vec![tid.clone()]);
    // open_as verifies the gateway's signature against the test CA and decrypts as autre
    let opened = open_as("otherca", &ack);
    assert_eq!(opened["encrypted"], true);
    assert_eq!(
        opened["signed_by"].as_str().unwrap().to_lowercase(),
        GATEWAY
    );
    assert!(opened["text"].as_str().unwrap().contains(&tid));
    assert!(
        mail.wait_for_count(INFECTIO, "INBOX", 1, T),
        "no forward after reprocess:\n{}",
        gw.log()
    );
    // the server copy stays in Quarantaine as the record of what arrived
    assert_eq!(mail.count(GATEWAY, "Quarantaine"), 1);
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0);
    gw.stop();
}

// ------------------------------------------------------------------------------------------
// 6. Outgoing ciphers, read by openssl and Python's email.

fn python_content_type(raw: &[u8]) -> Value {
    const SCRIPT: &str = r#"
import sys, json, email, email.policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
print(json.dumps({"type": m.get_content_type(), "smime_type": m.get_param("smime-type"),
                  "name": m.get_param("name"), "defects": [str(d) for d in m.defects]}))
"#;
    serde_json::from_slice(&python(SCRIPT, raw)).unwrap()
}

fn outgoing_cipher(cipher: &str, smime_type: &str) {
    let mail = MailSystem::start();
    let mut gw = Gateway::with(&mail, Db::Sqlite, &[("cipher", cipher)]);
    gw.start();
    let gp = user_email("gp");
    send(&mail, &make("cipher_request", Make::default()));
    assert!(
        mail.wait_for_count(&gp, "INBOX", 1, T),
        "no acknowledgement:\n{}",
        gw.log()
    );
    let ack = mail.fetch(&gp, "INBOX").remove(0);
    let opened = check_ack("gp", &ack, cipher);
    assert_eq!(opened["smime_type"], smime_type, "{cipher}");
    let parsed = python_content_type(&ack);
    assert_eq!(parsed["type"], "application/pkcs7-mime", "{parsed}");
    assert_eq!(parsed["smime_type"], smime_type, "{parsed}");
    assert_eq!(parsed["name"], "smime.p7m", "{parsed}");
    assert_eq!(parsed["defects"], serde_json::json!([]), "{parsed}");
    gw.stop();
}

#[test]
fn outgoing_cbc_is_enveloped_data() {
    outgoing_cipher("aes-256-cbc", "enveloped-data");
}

#[test]
fn outgoing_gcm_is_auth_enveloped_data() {
    outgoing_cipher("aes-256-gcm", "authEnveloped-data");
}

// ------------------------------------------------------------------------------------------
// 7. Issue 7: the author is the innermost signer; replays are duplicates; weak keys.

/// A private recipients folder with the group and admin certificates, so that a test may swap
/// one.
fn private_recipients_folder(gw: &Gateway) -> PathBuf {
    private_folder(gw, "recipients_dir", "recipients", |dir| {
        for name in ["infectio", "pneumo", "admin"] {
            std::fs::copy(user_cert(name), dir.join(format!("{name}.pem"))).unwrap();
        }
    })
}

/// The text of every alert in the admin's INBOX, decrypted.
fn admin_texts(mail: &MailSystem) -> Vec<String> {
    mail.fetch(ADMIN, "INBOX")
        .iter()
        .map(|m| {
            open_as("admin", m)["text"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn wait_outbox_drained(gw: &Gateway) {
    gw.wait_until("the outbox drained", T, || {
        let pending = rt().block_on(async {
            gw.store()
                .await
                .outbox_by_status(teleavis::store::OutboxStatus::Pending)
                .await
                .unwrap()
        });
        pending.is_empty().then_some(())
    });
}

fn outbox_rows(gw: &Gateway) -> i64 {
    rt().block_on(async {
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(gw.store().await.pool())
            .await
            .unwrap()
    })
}

/// The details of the audit rows with this action, oldest first.
fn audit_details(gw: &Gateway, action: &str) -> Vec<Value> {
    rt().block_on(async {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT details FROM audit WHERE action = $1 ORDER BY id")
                .bind(action)
                .fetch_all(gw.store().await.pool())
                .await
                .unwrap();
        rows.iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    })
}

/// `raw` with its Message-ID and Date replaced: what a replay attacker changes.
fn replayed(raw: &[u8], old_mid: &str, new_mid: &str) -> Vec<u8> {
    let raw = rewrite_header(
        raw,
        &format!("Message-ID: {old_mid}"),
        &format!("Message-ID: {new_mid}"),
    );
    let date = header_values(&raw, "Date").remove(0);
    rewrite_header(
        &raw,
        &format!("Date: {date}"),
        "Date: Sat, 28 Nov 2026 09:30:00 +0000",
    )
}

#[test]
fn the_author_is_the_innermost_signer_and_weak_keys_are_refused() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let recipients = private_recipients_folder(&gw);
    gw.start();
    let (gp, bua, faible) = (user_email("gp"), user_email("gp2"), user_email("weak"));
    let (gp_cert, gp_key) = (cert("gp"), key("gp"));
    let accepted = [
        (
            "triple_wrap_same_signer",
            make(
                "triple_wrap_same_signer",
                Make {
                    extra: &["--order", "sign-encrypt-sign", "--opaque"],
                    ..Make::default()
                },
            ),
        ),
        ("rsa_2048", make("rsa_2048", Make::default())),
        (
            "p256",
            make(
                "p256",
                Make {
                    signer: Some("ecgp"),
                    ..Make::default()
                },
            ),
        ),
    ];
    // Dr Bua's signed request, encrypted and re-signed by Dr Martin, sent as his own.
    let surreptitious = make(
        "surreptitious_forwarding",
        Make {
            signer: Some("gp2"),
            from: Some(&gp),
            extra: &[
                "--order",
                "sign-encrypt-sign",
                "--outer-sign",
                &gp_cert,
                &gp_key,
            ],
            ..Make::default()
        },
    );
    let weak = make(
        "rsa_1024",
        Make {
            signer: Some("weak"),
            ..Make::default()
        },
    );
    send(&mail, &surreptitious);
    send(&mail, &weak);
    for (_, raw) in &accepted {
        send(&mail, raw);
    }
    for (name, _) in &accepted {
        let row = wait_outcome(&gw, &mid(name));
        assert_eq!(
            (row.outcome.as_str(), row.reason.as_deref()),
            ("processed", None),
            "{name}: {row:?}\n{}",
            gw.log()
        );
    }
    let row = wait_outcome(&gw, &mid("surreptitious_forwarding"));
    assert_eq!(
        row.reason.as_deref(),
        Some("from_mismatch"),
        "{row:?}\n{}",
        gw.log()
    );
    let detail = row.detail.unwrap_or_default();
    assert!(
        detail.contains(&gp) && detail.contains(&bua),
        "both addresses in the detail: {detail}"
    );
    let row = wait_outcome(&gw, &mid("rsa_1024"));
    assert_eq!(row.reason.as_deref(), Some("weak_key"), "{row:?}");
    assert!(
        row.detail.unwrap_or_default().contains("1024 bits"),
        "the key size is named"
    );
    // The operator reads the code and its French explanation.
    let show = gw.cli(&["quarantine", "show", &row.id.to_string()]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{show:?}");
    assert!(
        shown.contains("weak_key") && shown.contains("trop courte"),
        "{shown}"
    );

    // One thread, acknowledgement and forward per accepted request; none for the others.
    let threads = gw.threads();
    let mut requesters: Vec<String> = threads
        .iter()
        .map(|t| t["requester"].as_str().unwrap().to_lowercase())
        .collect();
    requesters.sort();
    assert_eq!(
        requesters,
        ["courbe@cabinet.test", gp.as_str(), gp.as_str()]
    );
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 3, T), "{}", gw.log());
    assert!(mail.wait_for_count(&gp, "INBOX", 2, T), "{}", gw.log());
    assert!(mail.wait_for_count("courbe@cabinet.test", "INBOX", 1, T));
    // The P-256 requérant reads an acknowledgement encrypted to its EC key.
    check_ack(
        "ecgp",
        &mail.fetch("courbe@cabinet.test", "INBOX")[0],
        "P-256 ack",
    );
    // The admin hears about both refusals, with their codes.
    assert!(mail.wait_for_count(ADMIN, "INBOX", 2, T), "{}", gw.log());
    let mut alerted: Vec<String> = admin_texts(&mail)
        .into_iter()
        .filter_map(|t| {
            ["from_mismatch", "weak_key"]
                .into_iter()
                .find(|c| t.contains(&format!("Motif : {c}")))
                .map(str::to_string)
        })
        .collect();
    alerted.sort();
    assert_eq!(alerted, ["from_mismatch", "weak_key"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(mail.count(INFECTIO, "INBOX"), 3, "nothing else forwarded");
    assert_eq!(
        mail.count(&gp, "INBOX"),
        2,
        "no notice for the forged author"
    );
    for addr in [bua.as_str(), faible.as_str()] {
        assert_eq!(mail.count(addr, "INBOX"), 0, "nothing sent to {addr}");
    }
    assert_eq!(mail.count(GATEWAY, "Quarantaine"), 2);

    // The group's certificate replaced by a 1024-bit one: the forward is held, never
    // encrypted to it, and the admin told why; the GP's acknowledgement still goes out.
    std::fs::copy(user_cert("infectioweak"), recipients.join("infectio.pem")).unwrap();
    send(&mail, &make("weak_group_key", Make::default()));
    let row = wait_outcome(&gw, &mid("weak_group_key"));
    assert_eq!(row.outcome, "processed", "{row:?}");
    assert!(mail.wait_for_count(&gp, "INBOX", 3, T), "{}", gw.log());
    let held = gw.wait_until("the forward held", T, || {
        rt().block_on(async {
            gw.store()
                .await
                .outbox_by_status(teleavis::store::OutboxStatus::Held)
                .await
                .unwrap()
        })
        .into_iter()
        .find(|r| r.kind == "forward")
    });
    let why = held.last_error.unwrap_or_default();
    assert!(
        why.contains("weak_key") && why.contains(INFECTIO) && why.contains("1024"),
        "{why}"
    );
    assert!(mail.wait_for_count(ADMIN, "INBOX", 3, T), "{}", gw.log());
    let retained = admin_texts(&mail)
        .into_iter()
        .any(|t| t.contains("retenu") && t.contains("weak_key"));
    assert!(retained, "the admin is told the forward is held and why");
    assert_eq!(
        mail.count(INFECTIO, "INBOX"),
        3,
        "nothing encrypted to the weak key"
    );
    gw.stop();
}

#[test]
fn a_replayed_request_or_command_is_a_duplicate_and_does_nothing() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    let gp = user_email("gp");
    let expert = user_email("expert");
    let first = make("replay_first", Make::default());
    send(&mail, &first);
    let row = wait_outcome(&gw, &mid("replay_first"));
    assert_eq!(row.outcome, "processed", "{row:?}\n{}", gw.log());
    let tid = row.thread_id.clone().unwrap();
    assert!(mail.wait_for_count(&gp, "INBOX", 1, T), "{}", gw.log());
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 1, T), "{}", gw.log());

    // The same encrypted body under a new Message-ID and Date.
    let copy = replayed(&first, &mid("replay_first"), &mid("replay_copy"));
    assert_ne!(copy, first);
    assert_eq!(split_message(&copy).1, split_message(&first).1);
    send(&mail, &copy);
    let dup = wait_outcome(&gw, &mid("replay_copy"));
    assert_eq!(
        (dup.outcome.as_str(), dup.thread_id.as_deref()),
        ("duplicate", Some(tid.as_str())),
        "{dup:?}\n{}",
        gw.log()
    );
    assert!(dup.detail.unwrap_or_default().contains(&row.id.to_string()));
    assert!(mail.wait_for_count(GATEWAY, "Traités", 2, T));
    // One thread, one acknowledgement, one forward: the copy queued nothing.
    wait_outbox_drained(&gw);
    assert_eq!(outbox_rows(&gw), 2, "the ack and the forward only");
    assert_eq!(gw.threads().len(), 1);
    assert_eq!(mail.count(&gp, "INBOX"), 1, "one acknowledgement");
    assert_eq!(mail.count(INFECTIO, "INBOX"), 1, "one forward");
    let audit = audit_details(&gw, "inbound.duplicate");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (&audit[0]["of"], &audit[0]["by"]),
        (&serde_json::json!(row.id), &serde_json::json!("signature"))
    );

    // The expert closes the thread; then the #clore is replayed.
    let to = format!("teleexpertise+{}@hopital.test", tid.to_lowercase());
    let subject = format!("RE: [{tid}] Nouvelle demande");
    let clore = compose(&[
        "--from",
        &expert,
        "--to",
        &to,
        "--subject",
        &subject,
        "--body",
        "#clore\nPas d'antibiotique : surveillance simple.\n",
        "--message-id",
        &mid("clore_first"),
        "--sign",
        &cert("expert"),
        &key("expert"),
        "--encrypt-to",
        &cert("gateway"),
    ]);
    mail.send_raw(&expert, &[to.as_str()], &clore);
    let closed = wait_outcome(&gw, &mid("clore_first"));
    assert_eq!(closed.outcome, "processed", "{closed:?}\n{}", gw.log());
    // The compte-rendu reaches the GP and the group.
    assert!(mail.wait_for_count(&gp, "INBOX", 2, T), "{}", gw.log());
    assert!(mail.wait_for_count(INFECTIO, "INBOX", 2, T), "{}", gw.log());
    wait_outbox_drained(&gw);
    let queued = outbox_rows(&gw);
    let counts = |who: &str| mail.count(who, "INBOX");
    let before = (
        counts(&gp),
        counts(INFECTIO),
        counts(&expert),
        counts(ADMIN),
    );

    let clore_again = replayed(&clore, &mid("clore_first"), &mid("clore_copy"));
    mail.send_raw(&expert, &[to.as_str()], &clore_again);
    let dup = wait_outcome(&gw, &mid("clore_copy"));
    assert_eq!(dup.outcome, "duplicate", "{dup:?}\n{}", gw.log());
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        outbox_rows(&gw),
        queued,
        "nothing queued for the replayed #clore"
    );
    assert_eq!(
        (
            counts(&gp),
            counts(INFECTIO),
            counts(&expert),
            counts(ADMIN)
        ),
        before,
        "nothing sent (no closed-thread notice, no second compte-rendu)"
    );
    let threads = gw.threads();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0]["status"], "terminee");
    assert_eq!(audit_details(&gw, "inbound.duplicate").len(), 2);
    assert_eq!(mail.count(GATEWAY, "Traités"), 4);
    assert_eq!(mail.count(GATEWAY, "INBOX"), 0);
    gw.stop();
}
