//! Recipient certificates already parsed and found fit to encrypt to, kept a few minutes, so
//! that every outgoing message does not parse its recipient's certificate again (OpenSSL 3
//! takes ~0.1 ms to decode one) and verify its chain again (two verifications with a freshly
//! built store). A verdict is forgotten when the trust anchors or the CRLs are reloaded, when
//! the certificate expires, and after [`TTL`] in any case.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use openssl::x509::X509;
use sha2::{Digest, Sha256};

/// How long a verdict is trusted without a new verification. Revocation reaches the gateway
/// through CRL files, which are reloaded as soon as they change (and that clears this cache);
/// this bound is for everything else time changes (a CRL passing its nextUpdate).
pub(super) const TTL: chrono::Duration = chrono::Duration::minutes(10);

/// More distinct certificates than a desk sees in ten minutes: past it the cache starts over
/// rather than grow.
const MAX_ENTRIES: usize = 4096;

pub(super) type Key = [u8; 32];

/// The cache key of a certificate: SHA-256 of its DER encoding.
pub(super) fn key_of(der: &[u8]) -> Key {
    Sha256::digest(der).into()
}

struct Entry {
    cert: X509,
    not_after: Option<DateTime<Utc>>,
    /// The trust generation it was found usable under, and when; `None` until it is.
    usable: Option<(u64, DateTime<Utc>)>,
}

#[derive(Default)]
pub(super) struct Verdicts(Mutex<HashMap<Key, Entry>>);

impl Verdicts {
    /// The certificate of `key`, when it was found usable under `generation` and that verdict
    /// still holds at `now`.
    pub(super) fn usable(&self, key: &Key, generation: u64, now: DateTime<Utc>) -> bool {
        let Ok(map) = self.0.lock() else {
            return false;
        };
        map.get(key).is_some_and(|e| {
            e.usable
                .is_some_and(|(g, at)| g == generation && at <= now && now < at + TTL)
                && e.not_after.is_some_and(|t| now < t)
        })
    }

    /// The certificate whose DER is `der`, parsed once (`None` when it does not parse).
    pub(super) fn parse(&self, der: &[u8]) -> Option<X509> {
        let key = key_of(der);
        if let Some(e) = self.0.lock().ok()?.get(&key) {
            return Some(e.cert.clone());
        }
        let cert = X509::from_der(der).ok()?;
        self.insert(key, &cert, None);
        Some(cert)
    }

    /// Remembers that `cert` was found usable under `generation` at `now`.
    pub(super) fn remember(&self, key: Key, cert: &X509, generation: u64, now: DateTime<Utc>) {
        self.insert(key, cert, Some((generation, now)));
    }

    fn insert(&self, key: Key, cert: &X509, usable: Option<(u64, DateTime<Utc>)>) {
        let Ok(mut map) = self.0.lock() else { return };
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        let not_after = super::certs::asn1_to_chrono(cert.not_after());
        let cert = cert.clone();
        map.insert(
            key,
            Entry {
                cert,
                not_after,
                usable,
            },
        );
    }
}
