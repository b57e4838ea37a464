//! Tests of the S/MIME engine: messages made with the `openssl cms` command from the test PKI,
//! the Thunderbird/NSS corpus, and round trips of `protect` through OpenSSL and Python.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone as _, Utc};
use openssl::x509::X509;

use super::*;
use crate::config::{Cipher, EncryptOutgoing, KeyPairSettings, SmimeSettings};

/// The test PKI, made once per test process.
fn pki() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("teleavis-pki-")
            .tempdir()
            .unwrap()
            .keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/make-test-pki.sh");
        let st = Command::new("bash").arg(script).arg(&dir).status().unwrap();
        assert!(st.success(), "make-test-pki.sh failed");
        dir
    })
}

fn user(name: &str, ext: &str) -> PathBuf {
    pki().join("users").join(format!("{name}.{ext}"))
}

/// A temporary folder, removed when the returned guard drops.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("teleavis-smime-")
        .tempdir()
        .unwrap()
}

fn settings(require_encryption: bool) -> SmimeSettings {
    SmimeSettings {
        certificate: Some(user("gateway", "crt")),
        private_key: Some(user("gateway", "key")),
        pkcs12: None,
        pkcs12_password_file: None,
        previous: Vec::new(),
        trust_anchors: pki().join("trust"),
        crl_dir: Some(pki().join("crl")),
        require_crl: false,
        recipients_dir: None,
        require_encryption,
        encrypt_outgoing: EncryptOutgoing::Always,
        cipher: Cipher::Aes256Gcm,
        min_rsa_bits: 2048,
    }
}

fn engine(require_encryption: bool) -> SmimeEngine {
    SmimeEngine::load(&settings(require_encryption)).unwrap()
}

/// Runs a command, feeding `input`, and returns its stdout (panics on failure).
fn run(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const CONTENT: &[u8] = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nDemande d'avis : fonction r\xc3\xa9nale 30-60\r\n";
const GW: &str = "teleexpertise@hopital.test";

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `openssl cms -sign` by `who`; `headers` adds From/To/Subject (outermost layer only).
fn sign(input: &[u8], who: &str, opaque: bool, from: Option<&str>) -> Vec<u8> {
    let (crt, key) = (user(who, "crt"), user(who, "key"));
    let mut args = vec!["cms", "-sign", "-signer", p(&crt), "-inkey", p(&key)];
    if opaque {
        args.push("-nodetach");
    }
    if let Some(f) = from {
        args.extend(["-from", f, "-to", GW, "-subject", "Nouvelle demande"]);
    }
    run("openssl", &args, input)
}

fn encrypt(input: &[u8], to: &Path, gcm: bool, from: Option<&str>) -> Vec<u8> {
    let mut args = vec![
        "cms",
        "-encrypt",
        if gcm { "-aes-256-gcm" } else { "-aes256" },
    ];
    if let Some(f) = from {
        args.extend(["-from", f, "-to", GW, "-subject", "Nouvelle demande"]);
    }
    args.push(p(to));
    run("openssl", &args, input)
}

const GP: &str = "dr.martin@cabinet.test";

fn assert_gp(a: &Authenticated) {
    assert_eq!(a.signer.email.as_str(), GP);
    assert_eq!(a.signer.common_name, "10001234567/MARTIN Olivier");
    assert_eq!(a.signer.rpps.as_deref(), Some("10001234567"));
    assert_eq!(a.signer.display_name.as_deref(), Some("Olivier MARTIN"));
    assert!(a.signer.not_after > Utc::now());
    assert_eq!(
        X509::from_der(&a.signer.cert_der)
            .unwrap()
            .to_der()
            .unwrap(),
        a.signer.cert_der
    );
    assert!(
        a.content
            .starts_with(b"Content-Type: text/plain; charset=utf-8\r\n"),
        "{}",
        String::from_utf8_lossy(&a.content)
    );
    assert!(a.content.ends_with("fonction rénale 30-60\r\n".as_bytes()));
}

fn reject(e: &SmimeEngine, raw: &[u8]) -> Rejection {
    match e.authenticate(raw, Utc::now()) {
        Ok(a) => panic!("accepted, signer {}", a.signer.email),
        Err(r) => r,
    }
}

fn reason(e: &SmimeEngine, raw: &[u8]) -> RejectReason {
    reject(e, raw).reason
}

fn gw_crt() -> PathBuf {
    user("gateway", "crt")
}

/// `text` with `from` replaced by `to`; `from` must occur (a no-op would test nothing).
fn replaced(text: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not found");
    text.replacen(from, to, 1).into_bytes()
}

/// Wraps an application/pkcs7-mime entity as an attachment in multipart/mixed (some clients).
fn p7m_in_mixed(p7m_message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(p7m_message).replace("\r\n", "\n");
    let (_, entity) = text.split_once("MIME-Version: 1.0\n").unwrap();
    format!(
        "From: {GP}\nTo: {GW}\nSubject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"zz\"\n\n--zz\nContent-Type: text/plain\n\n\n--zz\n{entity}\n--zz--\n"
    )
    .into_bytes()
}

#[test]
fn openssl_made_messages_authenticate() {
    let enc = engine(true);
    let plain = engine(false);
    let detached = sign(CONTENT, "gp", false, Some(GP));
    let opaque = sign(CONTENT, "gp", true, Some(GP));
    for (name, raw, e, encrypted) in [
        ("detached", detached.clone(), &plain, false),
        ("opaque", opaque.clone(), &plain, false),
        (
            "sign+enc gcm",
            encrypt(&sign(CONTENT, "gp", false, None), &gw_crt(), true, Some(GP)),
            &enc,
            true,
        ),
        (
            "sign+enc cbc",
            encrypt(
                &sign(CONTENT, "gp", false, None),
                &gw_crt(),
                false,
                Some(GP),
            ),
            &enc,
            true,
        ),
        (
            "opaque+enc gcm",
            encrypt(&sign(CONTENT, "gp", true, None), &gw_crt(), true, Some(GP)),
            &enc,
            true,
        ),
        (
            "enc+sign detached",
            sign(
                &encrypt(CONTENT, &gw_crt(), true, None),
                "gp",
                false,
                Some(GP),
            ),
            &enc,
            true,
        ),
        (
            "enc+sign opaque",
            sign(
                &encrypt(CONTENT, &gw_crt(), false, None),
                "gp",
                true,
                Some(GP),
            ),
            &enc,
            true,
        ),
        (
            "triple wrap",
            sign(
                &encrypt(&sign(CONTENT, "gp", false, None), &gw_crt(), true, None),
                "gp",
                true,
                Some(GP),
            ),
            &enc,
            true,
        ),
        (
            "legacy x-pkcs7-mime, no smime-type",
            replaced(
                &encrypt(&sign(CONTENT, "gp", true, None), &gw_crt(), true, Some(GP)),
                "application/pkcs7-mime; smime-type=authEnveloped-data;",
                "application/x-pkcs7-mime;",
            ),
            &enc,
            true,
        ),
        (
            "wrong smime-type",
            replaced(
                &opaque,
                "smime-type=signed-data",
                "smime-type=enveloped-data",
            ),
            &plain,
            false,
        ),
        (
            "legacy x-pkcs7-signature",
            replaced(
                &detached,
                "Content-Type: application/pkcs7-signature",
                "Content-Type: application/x-pkcs7-signature",
            ),
            &plain,
            false,
        ),
        (
            "subject key identifiers (-keyid)",
            run(
                "openssl",
                &[
                    "cms",
                    "-encrypt",
                    "-keyid",
                    "-aes-256-gcm",
                    "-from",
                    GP,
                    p(&gw_crt()),
                ],
                &run(
                    "openssl",
                    &[
                        "cms",
                        "-sign",
                        "-keyid",
                        "-signer",
                        p(&user("gp", "crt")),
                        "-inkey",
                        p(&user("gp", "key")),
                    ],
                    CONTENT,
                ),
            ),
            &enc,
            true,
        ),
        (
            "smime.p7m in multipart/mixed",
            p7m_in_mixed(&encrypt(&detached, &gw_crt(), true, Some(GP))),
            &enc,
            true,
        ),
    ] {
        let a = e
            .authenticate(&raw, Utc::now())
            .unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_gp(&a);
        assert_eq!(a.encrypted, encrypted, "{name}");
    }
}

#[test]
fn openssl_made_negatives_have_exact_reasons() {
    let plain = engine(false);
    let enc = engine(true);
    let signed_by = |who: &str, from: &str| sign(CONTENT, who, false, Some(from));
    let addr = |who: &str| {
        std::fs::read_to_string(user(who, "email"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        reason(&plain, &signed_by("otherca", &addr("otherca"))),
        RejectReason::Untrusted
    );
    assert_eq!(
        reason(&plain, &signed_by("expired", &addr("expired"))),
        RejectReason::Expired
    );
    assert_eq!(
        reason(&plain, &signed_by("revoked", &addr("revoked"))),
        RejectReason::Revoked
    );
    assert_eq!(
        reason(&plain, &signed_by("nousage", &addr("nousage"))),
        RejectReason::WrongUsage
    );
    let r = reject(&plain, &signed_by("gp", "dr.ruch@hopital.test"));
    assert_eq!(
        (r.reason, r.sender_authenticated),
        (RejectReason::FromMismatch, false)
    );

    // One byte changed in the signed content.
    let good = String::from_utf8(signed_by("gp", GP)).unwrap();
    let flipped = good.replacen("Demande d'avis", "Demande d'avir", 1);
    assert_ne!(good, flipped);
    assert_eq!(reason(&plain, flipped.as_bytes()), RejectReason::Tampered);

    // Truncated base64 of an encrypted message.
    let sealed = encrypt(&signed_by("gp", GP), &gw_crt(), true, Some(GP));
    let cut = &sealed[..sealed.len() * 2 / 3];
    assert_eq!(reason(&enc, cut), RejectReason::Malformed);
    let cut_odd = &sealed[..sealed.len() * 2 / 3 + 1];
    assert_eq!(reason(&enc, cut_odd), RejectReason::Malformed);

    // Encrypted to someone else.
    let for_gp = encrypt(
        &sign(CONTENT, "gp", false, None),
        &user("gp", "crt"),
        true,
        Some(GP),
    );
    assert_eq!(reason(&enc, &for_gp), RejectReason::CannotDecrypt);

    let p7m = |body: &str| {
        format!(
            "From: {GP}\r\nTo: {GW}\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    };
    assert_eq!(
        reason(&enc, &p7m("TWFsZm9ybWVkIGdhcmJhZ2UgREVSIQ==")),
        RejectReason::Malformed
    );
    // Garbage that starts like enveloped data (right OID, broken body).
    assert_eq!(
        reason(&enc, &p7m("MIAGCSqGSIb3DQEHA6CAMIACAQAxgg==")),
        RejectReason::Malformed
    );
    assert_eq!(reason(&enc, &p7m("")), RejectReason::Malformed);
    assert_eq!(
        reason(&enc, &p7m("!!!not base64!!!")),
        RejectReason::Malformed
    );

    // Signed, not encrypted, with require_encryption: the sender is still known.
    let r = reject(&enc, &signed_by("gp", GP));
    assert_eq!(
        (r.reason, r.sender_authenticated),
        (RejectReason::NotEncrypted, true)
    );

    let unsigned = format!("From: {GP}\r\nTo: {GW}\r\nSubject: x\r\n\r\nBonjour\r\n");
    assert_eq!(reason(&plain, unsigned.as_bytes()), RejectReason::Unsigned);
    // Encrypted but unsigned.
    assert_eq!(
        reason(&enc, &encrypt(CONTENT, &gw_crt(), true, Some(GP))),
        RejectReason::Unsigned
    );
    // No From, or an unusable one.
    assert_eq!(
        reason(&plain, b"Subject: x\r\n\r\nBonjour\r\n"),
        RejectReason::Malformed
    );
    assert_eq!(
        reason(&plain, b"From: a@x.fr, b@x.fr\r\n\r\nBonjour\r\n"),
        RejectReason::Malformed
    );

    // Every signature layer is checked: a trusted inner signature inside an untrusted outer one.
    let outer_untrusted = sign(&sign(CONTENT, "gp", false, None), "otherca", true, Some(GP));
    assert_eq!(reason(&plain, &outer_untrusted), RejectReason::Untrusted);
    // Nested: the innermost signer matching From is the author.
    let nested = sign(&sign(CONTENT, "gp", false, None), "expert", true, Some(GP));
    assert_eq!(
        plain
            .authenticate(&nested, Utc::now())
            .unwrap()
            .signer
            .email
            .as_str(),
        GP
    );

    // Depth bound: 9 signature layers.
    let mut deep = CONTENT.to_vec();
    for _ in 0..=MAX_DEPTH {
        deep = sign(&deep, "gp", true, None);
    }
    let deep = [format!("From: {GP}\r\n").as_bytes(), deep.as_slice()].concat();
    assert_eq!(reason(&plain, &deep), RejectReason::Malformed);
}

#[test]
fn outer_multipart_wrappers_and_forwarded_attachments() {
    let plain = engine(false);
    // A list server wraps the signed message in multipart/mixed and appends a footer: the
    // signed part authenticates, the footer is not part of the content.
    let signed = String::from_utf8(sign(CONTENT, "gp", false, None)).unwrap();
    let wrapped = format!(
        "From: {GP}\r\nTo: {GW}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"LIST\"\r\n\r\n--LIST\r\n{}\r\n--LIST\r\nContent-Type: text/plain\r\n\r\nPied de page de la liste\r\n--LIST--\r\n",
        signed.trim_start_matches("MIME-Version: 1.0\n").trim_end()
    );
    let a = plain.authenticate(wrapped.as_bytes(), Utc::now()).unwrap();
    assert_gp(&a);
    assert!(!String::from_utf8_lossy(&a.content).contains("Pied de page"));

    // Inside a signature, an attached smime.p7m (a forwarded message) is content, not a layer.
    let forwarded = String::from_utf8(encrypt(CONTENT, &gw_crt(), true, None)).unwrap();
    let mixed = format!(
        "Content-Type: multipart/mixed; boundary=\"FWD\"\r\n\r\n--FWD\r\nContent-Type: text/plain\r\n\r\nVoir la piece jointe\r\n--FWD\r\n{}\r\n--FWD--\r\n",
        forwarded
            .trim_start_matches("MIME-Version: 1.0\n")
            .trim_end()
    );
    let outer = sign(mixed.as_bytes(), "gp", false, Some(GP));
    let a = plain.authenticate(&outer, Utc::now()).unwrap();
    assert!(!a.encrypted);
    assert!(a.content.starts_with(b"Content-Type: multipart/mixed"));
    assert!(String::from_utf8_lossy(&a.content).contains("Voir la piece jointe"));

    // Two S/MIME parts side by side at the top: ambiguous.
    let two = format!(
        "From: {GP}\r\nContent-Type: multipart/mixed; boundary=\"T\"\r\n\r\n--T\r\n{s}\r\n--T\r\n{s}\r\n--T--\r\n",
        s = signed.trim_start_matches("MIME-Version: 1.0\n").trim_end()
    );
    assert_eq!(reason(&plain, two.as_bytes()), RejectReason::Malformed);
    // A plain multipart without boundary is simply unsigned mail.
    let broken = format!("From: {GP}\r\nContent-Type: multipart/mixed\r\n\r\nx\r\n");
    assert_eq!(reason(&plain, broken.as_bytes()), RejectReason::Unsigned);
}

#[test]
fn key_renewal_previous_key_decrypts() {
    // The former gateway key pair (here the admin certificate) is kept under `previous`.
    let old = encrypt(
        &sign(CONTENT, "gp", false, None),
        &user("admin", "crt"),
        true,
        Some(GP),
    );
    assert_eq!(reason(&engine(true), &old), RejectReason::CannotDecrypt);
    let mut s = settings(true);
    s.previous.push(KeyPairSettings {
        certificate: Some(user("admin", "crt")),
        private_key: Some(user("admin", "key")),
        pkcs12: None,
        pkcs12_password_file: None,
    });
    let a = SmimeEngine::load(&s)
        .unwrap()
        .authenticate(&old, Utc::now())
        .unwrap();
    assert_gp(&a);
    assert!(a.encrypted);
}

#[test]
fn pkcs12_with_password_file_and_key_permissions() {
    let mut s = settings(true);
    s.certificate = None;
    s.private_key = None;
    s.pkcs12 = Some(user("gateway", "p12"));
    s.pkcs12_password_file = Some(user("p12", "password"));
    let e = SmimeEngine::load(&s).unwrap();
    let emails = certs::cert_emails(e.gateway_certificate());
    assert_eq!(emails.first().map(|a| a.as_str()), Some(GW));

    // Wrong password: the error names the file.
    let tmp = scratch();
    let dir = tmp.path();
    let bad_pass = dir.join("bad.password");
    std::fs::write(&bad_pass, "nope\n").unwrap();
    set_mode(&bad_pass, 0o600);
    s.pkcs12_password_file = Some(bad_pass);
    let err = SmimeEngine::load(&s).err().unwrap().to_string();
    assert!(err.contains("gateway.p12"), "{err}");

    // A private key readable by others is refused, naming the file.
    let key = dir.join("gateway.key");
    std::fs::copy(user("gateway", "key"), &key).unwrap();
    set_mode(&key, 0o644);
    let mut s = settings(true);
    s.private_key = Some(key.clone());
    let err = SmimeEngine::load(&s).err().unwrap().to_string();
    assert!(
        err.contains(p(&key)) && err.contains("readable by others"),
        "{err}"
    );
    set_mode(&key, 0o640);
    assert!(SmimeEngine::load(&s).is_ok());
    // A key that does not match the certificate.
    s.private_key = Some(user("gp", "key"));
    let err = SmimeEngine::load(&s).err().unwrap().to_string();
    assert!(err.contains("does not match"), "{err}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn crl_changes_are_picked_up_and_require_crl() {
    let tmp = scratch();
    let dir = tmp.path();
    let crl_dir = dir.join("crl");
    std::fs::create_dir(&crl_dir).unwrap();
    let mut s = settings(false);
    s.crl_dir = Some(crl_dir.clone());
    let e = SmimeEngine::load(&s).unwrap();
    let revoked = sign(CONTENT, "revoked", false, Some("revoque@cabinet.test"));
    // No CRL for the issuer: accepted (with a warning in the log).
    assert!(e.authenticate(&revoked, Utc::now()).is_ok());
    std::fs::copy(pki().join("crl/ca.crl.pem"), crl_dir.join("any-name.pem")).unwrap();
    assert_eq!(reason(&e, &revoked), RejectReason::Revoked);

    // DER CRLs under any name are read too.
    let der_dir = dir.join("crl-der");
    std::fs::create_dir(&der_dir).unwrap();
    let der = run(
        "openssl",
        &[
            "crl",
            "-in",
            p(&pki().join("crl/ca.crl.pem")),
            "-outform",
            "DER",
        ],
        b"",
    );
    std::fs::write(der_dir.join("ac.crl"), der).unwrap();
    s.crl_dir = Some(der_dir);
    assert_eq!(
        reason(&SmimeEngine::load(&s).unwrap(), &revoked),
        RejectReason::Revoked
    );
    // A file that is not a CRL is a configuration error naming the file.
    std::fs::write(crl_dir.join("readme.txt"), "pas une LCR").unwrap();
    s.crl_dir = Some(crl_dir.clone());
    let err = SmimeEngine::load(&s).err().unwrap().to_string();
    assert!(err.contains("readme.txt"), "{err}");

    // require_crl: an issuer without a CRL is not trusted.
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    s.crl_dir = Some(empty);
    s.require_crl = true;
    let e = SmimeEngine::load(&s).unwrap();
    assert_eq!(
        reason(&e, &sign(CONTENT, "gp", false, Some(GP))),
        RejectReason::Untrusted
    );
}

#[test]
fn recipients_and_usable_certificates() {
    let tmp = scratch();
    let dir = tmp.path();
    std::fs::copy(user("infectio", "crt"), dir.join("whatever.pem")).unwrap();
    std::fs::copy(user("revoked", "crt"), dir.join("revoked.crt")).unwrap();
    std::fs::write(dir.join("notes.txt"), "pas un certificat").unwrap();
    let mut s = settings(true);
    s.recipients_dir = Some(dir.to_path_buf());
    let e = SmimeEngine::load(&s).unwrap();
    let found = e
        .recipient_from_dir(&EmailAddress::parse("Infectio@Hopital.test").unwrap())
        .unwrap();
    assert_eq!(
        found.to_der().unwrap(),
        X509::from_pem(&std::fs::read(user("infectio", "crt")).unwrap())
            .unwrap()
            .to_der()
            .unwrap()
    );
    assert!(
        e.recipient_from_dir(&EmailAddress::parse("revoque@cabinet.test").unwrap())
            .is_none()
    );
    assert!(
        e.recipient_from_dir(&EmailAddress::parse("nobody@hopital.test").unwrap())
            .is_none()
    );
    // The folder is parsed once and reread when a file is added or removed, without a restart.
    let gp = EmailAddress::parse("dr.martin@cabinet.test").unwrap();
    assert!(e.recipient_from_dir(&gp).is_none());
    std::fs::copy(user("gp", "crt"), dir.join("gp.pem")).unwrap();
    assert!(
        e.recipient_from_dir(&gp).is_some(),
        "a certificate added is seen"
    );
    std::fs::remove_file(dir.join("gp.pem")).unwrap();
    assert!(
        e.recipient_from_dir(&gp).is_none(),
        "a certificate removed is forgotten"
    );
    let cert = |n: &str| X509::from_pem(&std::fs::read(user(n, "crt")).unwrap()).unwrap();
    let now = Utc::now();
    assert!(e.certificate_is_usable(&cert("gp"), now));
    for bad in ["revoked", "expired", "nousage", "otherca"] {
        assert!(!e.certificate_is_usable(&cert(bad), now), "{bad}");
    }
    // Validity is judged at the given instant.
    let in_2020 = Utc.with_ymd_and_hms(2020, 6, 1, 0, 0, 0).unwrap();
    assert!(!e.certificate_is_usable(&cert("gp"), in_2020));
}

const OUTGOING: &str = "From: =?utf-8?q?T=C3=A9l=C3=A9expertise?= <teleexpertise@hopital.test>\nTo: infectio@hopital.test\nSubject: [TE-2026-000042] Maladies infectieuses : Nouvelle demande\nDate: Fri, 27 Nov 2026 10:00:00 +0100\nMessage-ID: <te-2026-000042.1@hopital.test>\nReply-To: teleexpertise+te-2026-000042@hopital.test\nAuto-Submitted: auto-generated\nX-Teleavis-Thread: TE-2026-000042\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nDemande d'avis : fonction rénale 30-60\n";

/// `openssl cms -decrypt` of `file` as PKI user `who`.
fn openssl_decrypt(file: &Path, who: &str) -> Vec<u8> {
    let (crt, key) = (user(who, "crt"), user(who, "key"));
    let args = [
        "cms",
        "-decrypt",
        "-in",
        p(file),
        "-recip",
        p(&crt),
        "-inkey",
        p(&key),
    ];
    run("openssl", &args, b"")
}

fn write_tmp(dir: &tempfile::TempDir, bytes: &[u8]) -> PathBuf {
    let f = dir.path().join("msg.eml");
    std::fs::write(&f, bytes).unwrap();
    f
}

#[test]
fn protect_round_trips_through_openssl_python_and_ourselves() {
    let infectio = X509::from_pem(&std::fs::read(user("infectio", "crt")).unwrap()).unwrap();
    for (cipher, smime_type) in [
        (Cipher::Aes256Gcm, "authenveloped-data"),
        (Cipher::Aes256Cbc, "enveloped-data"),
    ] {
        let mut s = settings(true);
        s.cipher = cipher;
        let e = SmimeEngine::load(&s).unwrap();
        let out = e
            .protect(OUTGOING.as_bytes(), std::slice::from_ref(&infectio), true)
            .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "bare LF in output"
        );
        assert!(text.lines().all(|l| l.len() <= 998));
        let (head, _) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("X-Teleavis-Thread: TE-2026-000042\r\n")
                && head.contains("Reply-To: teleexpertise+te-2026-000042@hopital.test\r\n")
        );
        assert_eq!(head.matches("MIME-Version: 1.0").count(), 1);
        assert!(!text.contains("fonction"), "cleartext leaked");
        // Base64 in lines of at most 76.
        assert!(
            text.split("\r\n")
                .filter(|l| !l.contains(':'))
                .all(|l| l.len() <= 76)
        );

        // OpenSSL: the recipient and the gateway itself can decrypt; the signature verifies.
        let tmp = scratch();
        let file = write_tmp(&tmp, &out);
        for who in ["infectio", "gateway"] {
            let signed = openssl_decrypt(&file, who);
            let inner = run(
                "openssl",
                &["cms", "-verify", "-CAfile", p(&pki().join("ca.crt"))],
                &signed,
            );
            let inner = String::from_utf8(inner).unwrap();
            assert!(
                inner.contains("Content-Type: text/plain; charset=utf-8"),
                "{inner}"
            );
            assert!(inner.contains("fonction rénale 30-60"));
        }
        // Python's email package.
        let py = run(
            "python3",
            &[
                "-c",
                "import email,sys; m=email.message_from_binary_file(open(sys.argv[1],'rb')); \
                 print(m.get_content_type(), m.get_param('smime-type'), m['X-Teleavis-Thread'], m.get_filename())",
                p(&file),
            ],
            b"",
        );
        assert_eq!(
            String::from_utf8(py).unwrap().trim(),
            format!("application/pkcs7-mime {smime_type} TE-2026-000042 smime.p7m")
                .replace("authenveloped", "authEnveloped")
        );
        // Ourselves: the copy is encrypted to the gateway too and signed by it.
        let a = e.authenticate(&out, Utc::now()).unwrap();
        assert_eq!(a.signer.email.as_str(), GW);
        assert!(a.encrypted);
        assert!(
            a.content
                .starts_with(b"Content-Type: text/plain; charset=utf-8\r\n")
        );
        assert!(a.content.ends_with("fonction rénale 30-60\r\n".as_bytes()));
    }
}

#[test]
fn protect_sign_only_and_refusals() {
    let e = engine(false);
    let out = e.protect(OUTGOING.as_bytes(), &[], false).unwrap();
    let tmp = scratch();
    let file = write_tmp(&tmp, &out);
    run(
        "openssl",
        &[
            "cms",
            "-verify",
            "-in",
            p(&file),
            "-CAfile",
            p(&pki().join("ca.crt")),
            "-out",
            "/dev/null",
        ],
        b"",
    );
    let py = run(
        "python3",
        &[
            "-c",
            "import email,sys; m=email.message_from_binary_file(open(sys.argv[1],'rb')); print(m.get_content_type(), m.get_param('micalg'), m.get_param('protocol'))",
            p(&file),
        ],
        b"",
    );
    assert_eq!(
        String::from_utf8(py).unwrap().trim(),
        "multipart/signed sha-256 application/pkcs7-signature"
    );
    assert_eq!(
        e.authenticate(&out, Utc::now())
            .unwrap()
            .signer
            .email
            .as_str(),
        GW
    );
    // Never falls back to cleartext: encryption without recipients is an error.
    assert!(e.protect(OUTGOING.as_bytes(), &[], true).is_err());
    assert!(e.protect(b"no headers at all", &[], false).is_err());
}

#[test]
fn reason_codes_round_trip() {
    for r in RejectReason::ALL {
        assert_eq!(RejectReason::parse(r.code()), Some(r));
        assert!(r.explanation_fr().len() > 40);
    }
    assert_eq!(RejectReason::parse("nope"), None);
}

// ---- Thunderbird / NSS corpus ----

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/thunderbird-smime")
}

/// Bob's key as the gateway key, `TestCA.pem` as the anchor.
fn corpus_engine() -> SmimeEngine {
    let tmp = scratch();
    let dir = tmp.path();
    let pass = dir.join("nss.password");
    std::fs::write(&pass, "nss\n").unwrap();
    set_mode(&pass, 0o600);
    let p12 = dir.join("Bob.p12");
    std::fs::copy(corpus_dir().join("Bob.p12"), &p12).unwrap();
    set_mode(&p12, 0o600);
    SmimeEngine::load(&SmimeSettings {
        certificate: None,
        private_key: None,
        pkcs12: Some(p12),
        pkcs12_password_file: Some(pass),
        previous: Vec::new(),
        trust_anchors: corpus_dir().join("TestCA.pem"),
        crl_dir: None,
        require_crl: false,
        recipients_dir: None,
        require_encryption: false,
        encrypt_outgoing: EncryptOutgoing::Always,
        cipher: Cipher::Aes256Gcm,
        min_rsa_bits: 2048,
    })
    .unwrap()
}

/// Expected outcome of a corpus file, from its name (see the corpus ORIGIN.md).
fn corpus_expectation(name: &str) -> Result<&'static str, RejectReason> {
    if name.contains(".bad.") || name.contains("mismatch-econtent") {
        Err(RejectReason::Tampered)
    } else if name == "alice.env.eml" {
        Err(RejectReason::Unsigned)
    } else if name.contains(".dave.") {
        // Dave signed over Alice's signed message and sent it as his own: Alice, the
        // innermost signer, is the author, and she is not From (surreptitious forwarding).
        Err(RejectReason::FromMismatch)
    } else {
        Ok("alice@example.com")
    }
}

#[test]
fn thunderbird_corpus_walk() {
    let e = corpus_engine();
    // The corpus certificates are valid from 2026-01-26 to 2031-01-26.
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    assert!(names.len() >= 60, "corpus missing");
    let mut failures = Vec::new();
    let (mut ok, mut rejected) = (0, 0);
    println!(
        "{:<66} {:<8} {:<18} signer/encrypted",
        "file", "layers", "outcome"
    );
    for name in &names {
        let raw = std::fs::read(corpus_dir().join(name)).unwrap();
        // The pure stage alone unwraps everything that is not tampered.
        let layers = match unwrap_layers(&raw, &e.keys) {
            Ok(u) => u
                .layers
                .iter()
                .map(|l| {
                    if matches!(l, Layer::Signed { .. }) {
                        'S'
                    } else {
                        'E'
                    }
                })
                .collect::<String>(),
            Err(r) => format!("({})", r.reason),
        };
        let got = e.authenticate(&raw, now);
        let shown = match &got {
            Ok(a) => {
                ok += 1;
                format!("{:<18} {} enc={}", "ok", a.signer.email, a.encrypted)
            }
            Err(r) => {
                rejected += 1;
                format!(
                    "{:<18} {}",
                    r.reason.code(),
                    r.detail.chars().take(60).collect::<String>()
                )
            }
        };
        println!("{name:<66} {layers:<8} {shown}");
        let matches = match (corpus_expectation(name), &got) {
            (Ok(who), Ok(a)) => {
                a.signer.email.as_str() == who && a.encrypted == name.contains(".env")
            }
            (Err(want), Err(r)) => want == r.reason,
            _ => false,
        };
        if !matches {
            failures.push(name.clone());
        }
    }
    println!(
        "corpus: {} files, {ok} authenticated, {rejected} rejected as expected",
        names.len()
    );
    assert!(failures.is_empty(), "unexpected outcomes: {failures:#?}");
}

#[test]
fn corpus_nested_signers_and_from() {
    let e = corpus_engine();
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let raw = std::fs::read(
        corpus_dir().join("alice.plain.sig.SHA256.opaque.dave.sig.SHA256.opaque.eml"),
    )
    .unwrap();
    let u = unwrap_layers(&raw, &e.keys).unwrap();
    let signers: Vec<String> = u
        .layers
        .iter()
        .filter_map(|l| match l {
            Layer::Signed { signers, .. } => Some(certs::cert_emails(&signers[0])[0].to_string()),
            Layer::Encrypted { .. } => None,
        })
        .collect();
    assert_eq!(signers, ["dave@example.com", "alice@example.com"]);
    // As sent, From Dave: Dave's outer signature does not make him the author of Alice's text.
    let r = e.authenticate(&raw, now).err().unwrap();
    assert_eq!(r.reason, RejectReason::FromMismatch);
    assert!(
        r.detail.contains("dave@example.com") && r.detail.contains("alice@example.com"),
        "both addresses: {}",
        r.detail
    );
    // Same message with From rewritten to Alice: Alice, the inner signer, is the author.
    let as_alice = replaced(&raw, "From: Dave@example.com", "From: Alice@example.com");
    assert_eq!(
        e.authenticate(&as_alice, now)
            .unwrap()
            .signer
            .email
            .as_str(),
        "alice@example.com"
    );
    // And From a third party matches no signer.
    let as_eve = replaced(
        &as_alice,
        "From: Alice@example.com",
        "From: Eve@example.com",
    );
    assert_eq!(
        e.authenticate(&as_eve, now).err().unwrap().reason,
        RejectReason::FromMismatch
    );
    // After the certificates expire.
    let late = Utc.with_ymd_and_hms(2032, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(
        e.authenticate(&as_alice, late).err().unwrap().reason,
        RejectReason::Expired
    );
}

#[test]
fn not_encrypted_rejection_carries_the_verified_signer_and_no_other_does() {
    let enc = engine(true);
    let r = reject(&enc, &sign(CONTENT, "gp", false, Some(GP)));
    assert_eq!(r.reason, RejectReason::NotEncrypted);
    let signer = r.signer.expect("the verified signer");
    assert_eq!(signer.email.as_str(), GP);
    assert_eq!(
        signer.cert_der,
        X509::from_pem(&std::fs::read(user("gp", "crt")).unwrap())
            .unwrap()
            .to_der()
            .unwrap()
    );
    for (who, from) in [
        ("gp", "dr.ruch@hopital.test"),
        ("otherca", "autre@cabinet.test"),
        ("revoked", "revoque@cabinet.test"),
    ] {
        let r = reject(&enc, &sign(CONTENT, who, false, Some(from)));
        assert!(
            r.signer.is_none() && !r.sender_authenticated,
            "{who}: {r:?}"
        );
    }
}

#[test]
fn several_from_headers_are_malformed() {
    let plain = engine(false);
    let good = sign(CONTENT, "gp", false, Some(GP));
    assert!(plain.authenticate(&good, Utc::now()).is_ok());
    for extra in [
        "From: dr.bua@cabinet.test\r\n",
        "From: dr.martin@cabinet.test\r\n",
    ] {
        let mut first = extra.as_bytes().to_vec();
        first.extend_from_slice(&good);
        let r = reject(&plain, &first);
        assert_eq!(r.reason, RejectReason::Malformed, "{extra}: {r:?}");
        assert!(r.detail.contains("several From headers"), "{}", r.detail);
    }
}

#[test]
fn trust_anchors_are_reread_when_their_folder_changes() {
    let tmp = scratch();
    let dir = tmp.path().to_path_buf();
    std::fs::copy(pki().join("ca.crt"), dir.join("ca.crt")).unwrap();
    let e = SmimeEngine::load(&SmimeSettings {
        trust_anchors: dir.clone(),
        ..settings(false)
    })
    .unwrap();
    let from_other = sign(CONTENT, "otherca", false, Some("autre@cabinet.test"));
    assert_eq!(reason(&e, &from_other), RejectReason::Untrusted);
    std::fs::copy(pki().join("other-ca.crt"), dir.join("other-ca.crt")).unwrap();
    let a = e
        .authenticate(&from_other, Utc::now())
        .expect("trusted once added");
    assert_eq!(a.signer.email.as_str(), "autre@cabinet.test");
    // Removed again: distrusted again. An emptied folder keeps the last good set.
    std::fs::remove_file(dir.join("other-ca.crt")).unwrap();
    assert_eq!(reason(&e, &from_other), RejectReason::Untrusted);
    std::fs::remove_file(dir.join("ca.crt")).unwrap();
    assert!(
        e.authenticate(&sign(CONTENT, "gp", false, Some(GP)), Utc::now())
            .is_ok()
    );
}

#[test]
fn elliptic_curve_keys_sign_and_decrypt() {
    // The corpus has EC keys (Alice-ec.p12) but no EC messages: make some with openssl.
    let tmp = scratch();
    let dir = tmp.path();
    let p12 = corpus_dir().join("Alice-ec.p12");
    let pem = |args: &[&str]| {
        let mut a = vec!["pkcs12", "-in", p(&p12), "-passin", "pass:nss", "-nodes"];
        a.extend_from_slice(args);
        run("openssl", &a, b"")
    };
    let (crt, key, ca) = (
        dir.join("ec.crt"),
        dir.join("ec.key"),
        dir.join("ec-ca.pem"),
    );
    std::fs::write(&crt, pem(&["-clcerts", "-nokeys"])).unwrap();
    std::fs::write(&key, pem(&["-nocerts"])).unwrap();
    set_mode(&key, 0o600);
    std::fs::write(&ca, pem(&["-cacerts", "-nokeys"])).unwrap();
    let mut s = settings(true);
    s.certificate = Some(crt.clone());
    s.private_key = Some(key.clone());
    s.trust_anchors = ca;
    s.crl_dir = None;
    let e = SmimeEngine::load(&s).unwrap();
    let from = "Alice-ec@example.com";
    let signed = run(
        "openssl",
        &["cms", "-sign", "-signer", p(&crt), "-inkey", p(&key)],
        CONTENT,
    );
    let raw = encrypt(&signed, &crt, true, Some(from));
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap();
    let a = e.authenticate(&raw, now).unwrap();
    assert_eq!(a.signer.email.as_str(), "alice-ec@example.com");
    assert!(a.encrypted);
    assert!(a.content.ends_with("fonction rénale 30-60\r\n".as_bytes()));
}

// ---- issue 7: the author is the innermost signer, replays share a digest, weak keys ----

fn addr_of(who: &str) -> String {
    std::fs::read_to_string(user(who, "email"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_author_is_the_innermost_signer() {
    let enc = engine(true);
    let plain = engine(false);
    let bua = addr_of("gp2");
    // Surreptitious forwarding: Dr Bua's signed request, re-signed and encrypted by Dr Martin
    // and sent From Dr Martin. Every signature is valid; the author is Dr Bua.
    let inner_bua = sign(CONTENT, "gp2", false, None);
    for (name, raw, e) in [
        (
            "sign, encrypt, sign",
            sign(
                &encrypt(&inner_bua, &gw_crt(), true, None),
                "gp",
                true,
                Some(GP),
            ),
            &enc,
        ),
        (
            "signed twice",
            sign(&inner_bua, "gp", false, Some(GP)),
            &plain,
        ),
    ] {
        let r = reject(e, &raw);
        assert_eq!(r.reason, RejectReason::FromMismatch, "{name}: {r:?}");
        assert!(
            r.detail.contains(GP) && r.detail.contains(&bua),
            "{name}: both addresses in {}",
            r.detail
        );
        assert!(!r.sender_authenticated && r.signer.is_none(), "{name}");
    }
    // Triple wrap by the same person: Dr Martin is the author.
    let triple = sign(
        &encrypt(&sign(CONTENT, "gp", false, None), &gw_crt(), true, None),
        "gp",
        true,
        Some(GP),
    );
    assert_gp(&enc.authenticate(&triple, Utc::now()).unwrap());
    // An outer signature by someone else (a relay) is checked but authors nothing.
    let relayed = sign(&sign(CONTENT, "gp", false, None), "gp2", true, Some(GP));
    assert_gp(&plain.authenticate(&relayed, Utc::now()).unwrap());
    let as_relay = sign(&sign(CONTENT, "gp", false, None), "gp2", true, Some(&bua));
    assert_eq!(reason(&plain, &as_relay), RejectReason::FromMismatch);
}

#[test]
fn a_replayed_signature_has_the_same_digest() {
    let enc = engine(true);
    let digest = |raw: &[u8]| enc.authenticate(raw, Utc::now()).unwrap().signature_digest;
    let signed = sign(CONTENT, "gp", false, None);
    let first = encrypt(&signed, &gw_crt(), true, Some(GP));
    // The same signed entity encrypted again (other bytes, other outer headers), with CBC,
    // or wrapped in another outer signature: the same author's signature.
    let again = encrypt(&signed, &gw_crt(), false, Some(GP));
    assert_ne!(first, again);
    let rewrapped = sign(
        &encrypt(&signed, &gw_crt(), true, None),
        "gp",
        true,
        Some(GP),
    );
    let d = digest(&first);
    assert_eq!(d.len(), 64, "{d}");
    assert_eq!(digest(&again), d);
    assert_eq!(digest(&rewrapped), d);
    // Other content: another signature.
    let other = [CONTENT, b"Deuxieme question\r\n"].concat();
    let fresh = encrypt(&sign(&other, "gp", false, None), &gw_crt(), true, Some(GP));
    assert_ne!(digest(&fresh), d);
    // The digest covers the signer too.
    assert_ne!(
        signature_digest(b"cert a", b"sig"),
        signature_digest(b"cert b", b"sig")
    );
    assert_ne!(signature_digest(b"ab", b"c"), signature_digest(b"a", b"bc"));
}

#[test]
fn weak_signer_keys_are_refused_and_p256_accepted() {
    let enc = engine(true);
    let sealed = |who: &str| {
        let from = addr_of(who);
        encrypt(
            &sign(CONTENT, who, false, None),
            &gw_crt(),
            true,
            Some(&from),
        )
    };
    let r = reject(&enc, &sealed("weak"));
    assert_eq!(r.reason, RejectReason::WeakKey, "{r:?}");
    assert!(r.detail.contains("RSA key of 1024 bits"), "{}", r.detail);
    // Never answered: a reply would have to be encrypted to that very key.
    assert!(!r.sender_authenticated && r.signer.is_none());
    assert_eq!(reason(&enc, &sealed("ecweak")), RejectReason::WeakKey);
    let ec = enc.authenticate(&sealed("ecgp"), Utc::now()).unwrap();
    assert_eq!(ec.signer.email.as_str(), "courbe@cabinet.test");
    assert!(ec.encrypted);
    // A weak outer signature spoils the message even when the author's key is strong.
    let outer_weak = sign(&sign(CONTENT, "gp", false, None), "weak", true, Some(GP));
    assert_eq!(reason(&engine(false), &outer_weak), RejectReason::WeakKey);
    // The threshold is the setting's: 1024 lets the RSA-1024 signer through.
    let lax = SmimeEngine::load(&SmimeSettings {
        min_rsa_bits: 1024,
        ..settings(true)
    })
    .unwrap();
    assert_eq!(
        lax.authenticate(&sealed("weak"), Utc::now())
            .unwrap()
            .signer
            .email
            .as_str(),
        "faible@cabinet.test"
    );
    assert_eq!(reason(&lax, &sealed("ecweak")), RejectReason::WeakKey);
}

#[test]
fn weak_recipient_certificates_are_never_encrypted_to() {
    let tmp = scratch();
    let dir = tmp.path();
    std::fs::copy(user("infectioweak", "crt"), dir.join("infectio.pem")).unwrap();
    let mut s = settings(true);
    s.recipients_dir = Some(dir.to_path_buf());
    let e = SmimeEngine::load(&s).unwrap();
    let now = Utc::now();
    let infectio = EmailAddress::parse("infectio@hopital.test").unwrap();
    let why = e.recipient_certificate(&infectio, None, now).unwrap_err();
    assert!(
        why.contains("infectio@hopital.test") && why.contains("weak_key") && why.contains("1024"),
        "{why}"
    );
    assert!(e.recipient_from_dir(&infectio).is_none());
    let cert = |n: &str| X509::from_pem(&std::fs::read(user(n, "crt")).unwrap()).unwrap();
    assert!(!e.certificate_is_usable(&cert("weak"), now));
    assert!(e.certificate_is_usable(&cert("ecgp"), now));
    // A strong learned certificate is preferred; a weak learned one is refused too.
    let gp = EmailAddress::parse(GP).unwrap();
    assert!(
        e.recipient_certificate(&gp, Some(cert("gp")), now)
            .unwrap()
            .is_some()
    );
    assert!(
        e.recipient_certificate(&infectio, Some(cert("infectio")), now)
            .unwrap()
            .is_some()
    );
    let faible = EmailAddress::parse("faible@cabinet.test").unwrap();
    assert!(
        e.recipient_certificate(&faible, Some(cert("weak")), now)
            .is_err()
    );
    assert_eq!(e.recipient_certificate(&faible, None, now), Ok(None));
    // protect is the last guard: it never encrypts to a weak key.
    let err = e
        .protect(OUTGOING.as_bytes(), &[cert("infectioweak")], true)
        .unwrap_err();
    assert!(err.to_string().contains("weak_key"), "{err}");
    // A P-256 recipient gets mail openssl decrypts with its key.
    let out = e
        .protect(OUTGOING.as_bytes(), &[cert("ecgp")], true)
        .unwrap();
    let file = write_tmp(&tmp, &out);
    let plain = openssl_decrypt(&file, "ecgp");
    assert!(!plain.is_empty());
}

#[test]
fn issue7_fuzz_seeds_unwrap_with_the_fuzz_key() {
    // The fuzz target decrypts with Bob's key: the seeds must reach their inner layers.
    let e = corpus_engine();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/unwrap");
    let shape = |name: &str| {
        let raw = std::fs::read(seeds.join(format!("issue7-{name}.eml"))).unwrap();
        let u = unwrap_layers(&raw, &e.keys).unwrap_or_else(|r| panic!("{name}: {r}"));
        u.layers
            .iter()
            .map(|l| match l {
                Layer::Signed {
                    signers,
                    signatures,
                    ..
                } => (
                    certs::cert_emails(&signers[0])[0].to_string(),
                    signatures[0].clone(),
                ),
                Layer::Encrypted { .. } => ("encrypted".to_string(), Vec::new()),
            })
            .collect::<Vec<_>>()
    };
    let who = |layers: &[(String, Vec<u8>)]| layers.iter().map(|l| l.0.clone()).collect::<Vec<_>>();
    let sneaky = shape("surreptitious-forwarding");
    assert_eq!(who(&sneaky), [GP, "encrypted", "dr.bua@cabinet.test"]);
    let triple = shape("triple-wrap-same-signer");
    assert_eq!(who(&triple), [GP, "encrypted", GP]);
    assert_eq!(shape("replayed-request"), triple, "the same signatures");
    for (name, signer) in [
        ("weak-key-rsa1024", "faible@cabinet.test"),
        ("p256-signer", "courbe@cabinet.test"),
        ("p224-signer", "petite@cabinet.test"),
    ] {
        assert_eq!(who(&shape(name)), ["encrypted", signer], "{name}");
    }
}

#[test]
fn recipient_verdicts_last_until_trust_changes_or_time_passes() {
    let tmp = scratch();
    let anchors = tmp.path().join("anchors");
    let crl_dir = tmp.path().join("crl");
    std::fs::create_dir(&anchors).unwrap();
    std::fs::create_dir(&crl_dir).unwrap();
    std::fs::copy(pki().join("ca.crt"), anchors.join("ca.crt")).unwrap();
    std::fs::copy(pki().join("other-ca.crt"), anchors.join("other-ca.crt")).unwrap();
    let e = SmimeEngine::load(&SmimeSettings {
        trust_anchors: anchors.clone(),
        crl_dir: Some(crl_dir.clone()),
        ..settings(false)
    })
    .unwrap();
    let cert = |n: &str| X509::from_pem(&std::fs::read(user(n, "crt")).unwrap()).unwrap();
    let now = Utc::now();
    // Remembered as usable, asked again: still usable.
    for _ in 0..2 {
        assert!(e.certificate_is_usable(&cert("revoked"), now));
        assert!(e.certificate_is_usable(&cert("otherca"), now));
    }
    // A CRL arrives: the remembered verdict goes with the reload.
    std::fs::copy(pki().join("crl/ca.crl.pem"), crl_dir.join("ca.pem")).unwrap();
    assert!(!e.certificate_is_usable(&cert("revoked"), now));
    // An anchor removed: its certificates are no longer usable.
    std::fs::remove_file(anchors.join("other-ca.crt")).unwrap();
    assert!(!e.certificate_is_usable(&cert("otherca"), now));
    // Time: a verdict does not outlive the certificate, nor hold before it was reached.
    let gp = cert("gp");
    assert!(e.certificate_is_usable(&gp, now));
    let expired =
        crate::smime::certs::asn1_to_chrono(gp.not_after()).unwrap() + chrono::Duration::days(1);
    assert!(!e.certificate_is_usable(&gp, expired));
    let in_2020 = Utc.with_ymd_and_hms(2020, 6, 1, 0, 0, 0).unwrap();
    assert!(!e.certificate_is_usable(&gp, in_2020));
    // A learned certificate's DER is decoded once and gives the same certificate.
    let der = gp.to_der().unwrap();
    let a = e.certificate_from_der(&der).unwrap();
    assert_eq!(a.to_der().unwrap(), der);
    assert_eq!(e.certificate_from_der(&der).unwrap().to_der().unwrap(), der);
    assert!(e.certificate_from_der(b"not a certificate").is_none());
}
