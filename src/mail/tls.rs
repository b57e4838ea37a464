//! rustls client configuration for IMAP (and the key loading SMTP shares).
//!
//! When `ca_file` is set, the server must chain to a certificate in that file and to nothing
//! else: the system roots are not consulted. The crypto provider is always `ring`, passed
//! explicitly so that a second provider linked into the binary cannot make rustls panic.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::MailError;

/// The crypto provider used for every TLS connection.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting only `ca_file` (or the system's roots when it is `None`),
/// presenting `client_cert` = (certificate chain PEM, private key PEM) when given.
pub fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, MailError> {
    let roots = root_store(ca_file)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| MailError::Config {
            protocol: "tls",
            message: e.to_string(),
        })?
        .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => {
            let chain = load_certs(cert)?;
            let key_der = load_private_key(key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| MailError::file(cert, format!("client certificate and key: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Trust anchors: the certificates of `ca_file`, or the system store.
fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, MailError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in load_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| MailError::file(path, format!("CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(MailError::Config {
                    protocol: "tls",
                    message: "no ca_file set and no system CA certificate found".into(),
                });
            }
        }
    }
    Ok(roots)
}

/// All PEM certificates of a file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, MailError> {
    let pem = std::fs::read(path).map_err(|e| MailError::file(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MailError::file(path, format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(MailError::file(path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// Refuses a private key file that other users may access (`config::private_mode`).
pub fn check_key_permissions(path: &Path) -> Result<(), MailError> {
    crate::config::private_mode(path).map_err(|problem| MailError::file(path, problem))
}

/// Reads the PEM bytes of a private key after the permission check.
pub fn read_private_key_pem(path: &Path) -> Result<Vec<u8>, MailError> {
    check_key_permissions(path)?;
    std::fs::read(path).map_err(|e| MailError::file(path, e))
}

/// A PEM private key (PKCS#8, PKCS#1 or SEC1), after the permission check.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, MailError> {
    let pem = read_private_key_pem(path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| MailError::file(path, format!("no usable PEM private key: {e}")))
}

/// The name the server certificate must carry: a DNS name or an IP address (`[::1]` allowed).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(bare.to_string())
        .map_err(|e| format!("{host:?} is neither a DNS name nor an IP address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn key_file(dir: &Path, mode: u32) -> std::path::PathBuf {
        let path = dir.join(format!("key-{mode:o}.pem"));
        std::fs::write(
            &path,
            b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn key_permissions() {
        let dir = tempfile::tempdir().unwrap();
        // Group access is allowed (root:teleavis 0640 packaging); other users never.
        for ok in [0o600, 0o400, 0o640, 0o660] {
            check_key_permissions(&key_file(dir.path(), ok)).unwrap();
        }
        for bad in [0o644, 0o604, 0o602, 0o666] {
            let path = key_file(dir.path(), bad);
            let err = check_key_permissions(&path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("readable by others"), "{err}");
            // load_private_key refuses before parsing.
            assert!(
                load_private_key(&path)
                    .unwrap_err()
                    .to_string()
                    .contains("readable by others")
            );
        }
        let missing = dir.path().join("missing.key");
        assert!(
            check_key_permissions(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing.key")
        );
    }

    #[test]
    fn bad_ca_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty-ca.pem");
        std::fs::write(&path, b"not a certificate\n").unwrap();
        let err = client_config(Some(&path), None).unwrap_err().to_string();
        assert!(err.contains("empty-ca.pem"), "{err}");
    }

    #[test]
    fn server_names() {
        assert!(server_name("imap.example.test").is_ok());
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(server_name("bad host").is_err());
    }
}
