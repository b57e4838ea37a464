//! Fuzz target: the S/MIME unwrap stage (MIME splitting, base64, CMS parsing, signature
//! checks, decryption with a fixed key) and mail-parser on what comes out, on arbitrary bytes.
//! Nothing may panic, hang or exhaust memory.
#![no_main]
#![allow(dead_code)]

// The same source files as `teleavis::smime`, compiled in directly: the fuzz build then
// instruments only openssl, base64 and mail-parser, not the daemon's whole dependency tree.
#[path = "../../src/smime/cms.rs"]
mod cms;
#[path = "../../src/smime/error.rs"]
mod error;
#[path = "../../src/smime/mime.rs"]
mod mime;
#[path = "../../src/smime/unwrap.rs"]
mod unwrap;

use std::sync::OnceLock;

/// `error.rs` can name the signer of a refused message (filled in by the engine, never by the
/// unwrap stage): a stand-in, so that the file compiles here on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerIdentity;

use libfuzzer_sys::fuzz_target;

/// Bob's key from the Thunderbird corpus: the seeds' encrypted layers decrypt with it.
fn keys() -> &'static [cms::DecryptionKey] {
    static KEYS: OnceLock<Vec<cms::DecryptionKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let der = include_bytes!("../../tests/data/thunderbird-smime/Bob.p12");
        let parsed = openssl::pkcs12::Pkcs12::from_der(der)
            .and_then(|p| p.parse2("nss"))
            .expect("Bob.p12 opens");
        vec![cms::DecryptionKey {
            cert: parsed.cert.expect("certificate"),
            key: parsed.pkey.expect("key"),
        }]
    })
}

fuzz_target!(|data: &[u8]| {
    let parser = mail_parser::MessageParser::default();
    if let Some(m) = parser.parse_headers(data) {
        let _ = m.from().and_then(|f| f.first()).and_then(|a| a.address());
    }
    if let Ok(u) = unwrap::unwrap_layers(data, keys()) {
        let _ = u.encrypted();
        let _ = parser.parse(&u.content);
    }
});
