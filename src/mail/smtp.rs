//! The SMTP transport (lettre over rustls) and the classification of failures.
//!
//! TLS is mandatory: implicit (`Tls::Wrapper`, port 465) or STARTTLS required (`Tls::Required`);
//! when `ca_file` is set it is the only trust anchor (the system store is switched off). AUTH
//! PLAIN or LOGIN with `username` + `password_file`, and/or a client certificate as TLS identity.
//! One connection per message (lettre's pool is not compiled in): simple and robust for the
//! volumes of a téléexpertise desk.

use std::str::FromStr as _;
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    Certificate, CertificateStore, Identity, Tls, TlsParameters,
};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::{MailError, normalize_crlf, tls};
use crate::config::{SmtpSettings, TlsMode, read_secret};

/// Why a message was not accepted by the submission server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later: 4xx reply, network, TLS, timeout, authentication refused.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Will never succeed as is: 5xx reply (other than an authentication refusal), invalid
    /// address.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// Builds the transport; reads the CA, the client certificate and key (permission-checked)
    /// and the password now, so that configuration mistakes show at start-up. Does not connect.
    pub fn new(settings: &SmtpSettings) -> Result<SmtpSender, MailError> {
        let config_err = |message: &str| MailError::Config {
            protocol: "smtp",
            message: message.into(),
        };
        let host = settings
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&settings.host);
        tls::server_name(host).map_err(|e| config_err(&e))?;

        let mut params = TlsParameters::builder(host.to_string());
        if let Some(ca) = &settings.ca_file {
            // Validate with our own loader (clear errors), then hand the PEM to lettre.
            tls::load_certs(ca)?;
            let pem = std::fs::read(ca).map_err(|e| MailError::file(ca, e))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| MailError::file(ca, format!("CA certificate: {e}")))?;
            params = params
                .certificate_store(CertificateStore::None)
                .add_root_certificate(cert);
        }
        match (&settings.client_certificate, &settings.client_key) {
            (Some(cert), Some(key)) => {
                let chain = tls::load_certs(cert)?;
                let key_pem = tls::read_private_key_pem(key)?;
                // lettre's rustls Identity::from_pem takes the certificate as DER (leaf only).
                let identity = Identity::from_pem(chain[0].as_ref(), &key_pem).map_err(|e| {
                    MailError::file(key, format!("client certificate and key: {e}"))
                })?;
                params = params.identify_with(identity);
            }
            (None, None) => {}
            _ => return Err(config_err("client_certificate and client_key go together")),
        }
        let params = params.build_rustls().map_err(|e| MailError::Config {
            protocol: "smtp",
            message: format!("TLS parameters: {e}"),
        })?;
        let tls_mode = match settings.tls {
            TlsMode::Implicit => Tls::Wrapper(params),
            TlsMode::Starttls => Tls::Required(params),
        };

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(settings.port)
            .tls(tls_mode)
            .timeout(Some(Duration::from_secs(settings.timeout_seconds.max(1))));
        match (&settings.username, &settings.password_file) {
            (Some(user), Some(path)) => {
                let password = read_secret(path).map_err(|e| MailError::file(path, e))?;
                builder = builder
                    .credentials(Credentials::new(user.clone(), password))
                    .authentication(vec![Mechanism::Plain, Mechanism::Login]);
            }
            (None, None) => {}
            (Some(_), None) => return Err(config_err("username is set but password_file is not")),
            (None, Some(_)) => return Err(config_err("password_file is set but username is not")),
        }
        Ok(SmtpSender {
            transport: builder.build(),
            host: host.to_string(),
            port: settings.port,
        })
    }

    /// Submits `raw` (bare LF turned into CRLF, otherwise byte for byte) for `recipients`, with
    /// `envelope_from` as the return path (empty string: null return path `<>`).
    pub async fn send_raw(
        &self,
        envelope_from: &str,
        recipients: &[String],
        raw: &[u8],
    ) -> Result<(), SendError> {
        let from = if envelope_from.is_empty() {
            None
        } else {
            Some(Address::from_str(envelope_from).map_err(|e| {
                SendError::Permanent(format!("invalid envelope sender {envelope_from:?}: {e}"))
            })?)
        };
        let to = recipients
            .iter()
            .map(|r| {
                Address::from_str(r)
                    .map_err(|e| SendError::Permanent(format!("invalid recipient {r:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let envelope =
            Envelope::new(from, to).map_err(|e| SendError::Permanent(format!("envelope: {e}")))?;
        let body = normalize_crlf(raw);
        // lettre always ends DATA with "\r\n.\r\n": drop our final CRLF so that it is not
        // doubled into an extra empty line (the bytes delivered are the bytes given).
        let body = body.strip_suffix(b"\r\n").unwrap_or(&body);
        match self.transport.send_raw(&envelope, body).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify(&e)),
        }
    }

    fn classify(&self, e: &lettre::transport::smtp::Error) -> SendError {
        let message = format!("smtp {}:{}: {}", self.host, self.port, error_chain(e));
        // Authentication refusals (530, 534, 535, 538) are 5xx, but they say nothing about the
        // message: a rotated password must not fail the whole outbox for good.
        let auth_refused = e
            .status()
            .is_some_and(|c| matches!(c.to_string().as_str(), "530" | "534" | "535" | "538"));
        if e.is_permanent() && !auth_refused {
            SendError::Permanent(message)
        } else {
            SendError::Temporary(message)
        }
    }

    /// Connects, negotiates TLS, authenticates and quits (for `check-config --connect`).
    pub async fn test_connection(&self) -> Result<bool, MailError> {
        self.transport
            .test_connection()
            .await
            .map_err(|e| MailError::Remote {
                protocol: "smtp",
                host: self.host.clone(),
                port: self.port,
                step: "test connection",
                message: error_chain(&e),
            })
    }
}

/// The error and its sources on one line (lettre's Display alone hides the TLS reason).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
