//! Key strength of correspondents' certificates: the `weak_key` policy (`smime.min_rsa_bits`
//! for RSA and DSA, 256 bits for elliptic curves), applied to signers and to the recipients
//! the gateway encrypts to.

use openssl::pkey::Id;
use openssl::x509::X509Ref;

/// Smallest elliptic-curve key accepted (P-256); below it an EC key is weak.
pub const MIN_EC_BITS: u32 = 256;

/// `Err` with a one-line reason for the admin when the certificate's public key is too short.
pub fn check_strength(cert: &X509Ref, min_rsa_bits: u32) -> Result<(), String> {
    let key = cert
        .public_key()
        .map_err(|e| format!("unreadable public key: {}", super::error::ssl_summary(&e)))?;
    let bits = key.bits();
    let (kind, min) = match key.id() {
        Id::RSA | Id::RSA_PSS => ("RSA", min_rsa_bits),
        Id::DSA | Id::DH => ("DSA", min_rsa_bits),
        Id::EC => ("EC", MIN_EC_BITS),
        // Edwards and Montgomery curves have fixed, strong sizes (Ed25519 reports 253 bits).
        Id::ED25519 | Id::ED448 | Id::X25519 | Id::X448 => return Ok(()),
        _ => ("unknown-type", MIN_EC_BITS),
    };
    if bits < min {
        Err(format!(
            "{kind} key of {bits} bits, below the {min} bits required{}",
            if kind == "EC" {
                ""
            } else {
                " (smime.min_rsa_bits)"
            }
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509NameBuilder};

    fn self_signed(key: &PKey<Private>) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "k").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        let md = if key.id() == Id::ED25519 {
            MessageDigest::null()
        } else {
            MessageDigest::sha256()
        };
        b.sign(key, md).unwrap();
        b.build()
    }

    fn rsa(bits: u32) -> X509 {
        self_signed(&PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap())
    }

    fn ec(nid: Nid) -> X509 {
        let group = EcGroup::from_curve_name(nid).unwrap();
        self_signed(&PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap())
    }

    #[test]
    fn rsa_and_ec_keys_are_measured_against_their_minimum() {
        let weak = check_strength(&rsa(1024), 2048).unwrap_err();
        assert!(weak.contains("RSA key of 1024 bits"), "{weak}");
        assert!(weak.contains("2048"), "{weak}");
        assert_eq!(check_strength(&rsa(2048), 2048), Ok(()));
        // The threshold is the setting's.
        assert!(check_strength(&rsa(2048), 3072).is_err());
        assert_eq!(check_strength(&rsa(1024), 1024), Ok(()));
        assert_eq!(check_strength(&ec(Nid::X9_62_PRIME256V1), 2048), Ok(()));
        assert_eq!(check_strength(&ec(Nid::SECP384R1), 4096), Ok(()));
        let small = check_strength(&ec(Nid::SECP224R1), 2048).unwrap_err();
        assert!(small.contains("EC key of 224 bits"), "{small}");
        let ed = self_signed(&PKey::generate_ed25519().unwrap());
        assert_eq!(check_strength(&ed, 2048), Ok(()));
    }
}
