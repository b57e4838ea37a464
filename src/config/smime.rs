//! `[smime]`: certificates, keys, trust anchors and the outgoing encryption policy.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptOutgoing {
    Always,
    WhenPossible,
    Never,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Cipher {
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmimeSettings {
    /// Gateway certificate (PEM, may hold the chain). Alternative: `pkcs12`.
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub pkcs12: Option<PathBuf>,
    pub pkcs12_password_file: Option<PathBuf>,
    /// Older gateway identities still accepted for decryption during a renewal.
    #[serde(default)]
    pub previous: Vec<KeyPairSettings>,
    pub trust_anchors: PathBuf,
    pub crl_dir: Option<PathBuf>,
    #[serde(default)]
    pub require_crl: bool,
    pub recipients_dir: Option<PathBuf>,
    #[serde(default = "yes")]
    pub require_encryption: bool,
    #[serde(default = "default_encrypt_outgoing")]
    pub encrypt_outgoing: EncryptOutgoing,
    #[serde(default = "default_cipher")]
    pub cipher: Cipher,
    /// Signer and recipient RSA keys shorter than this are refused (`weak_key`); EC keys
    /// need 256 bits.
    #[serde(default = "default_min_rsa_bits")]
    pub min_rsa_bits: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPairSettings {
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub pkcs12: Option<PathBuf>,
    pub pkcs12_password_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn default_encrypt_outgoing() -> EncryptOutgoing {
    EncryptOutgoing::Always
}
fn default_cipher() -> Cipher {
    Cipher::Aes256Gcm
}
fn default_min_rsa_bits() -> u32 {
    2048
}
