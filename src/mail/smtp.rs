//! The SMTP transport (lettre over rustls) and the classification of failures.
//!
//! TLS is mandatory: implicit (port 465) or STARTTLS required (never anything else in clear);
//! when `ca_file` is set it is the only trust anchor (the system store is switched off). AUTH
//! PLAIN or LOGIN with `username` + `password_file`, and/or a client certificate as TLS identity.
//! [`SmtpSender::send_raw`] opens one connection per message; the outbox keeps one open per
//! worker instead (`smtp_session.rs`, `RSET` between messages), so a burst does not pay a TLS
//! handshake and an AUTH per message.
//!
//! The TCP connection is ours, not lettre's: lettre never sets `TCP_NODELAY`, and it writes the
//! end of DATA (`\r\n.\r\n`) as a separate small write after the body, which Nagle's algorithm
//! then holds back until the server's delayed ACK (~40 ms per message). We connect with
//! `TCP_NODELAY`, do implicit TLS ourselves (tokio-rustls, `tls::client_config`) or let lettre do
//! STARTTLS, and drive lettre's `AsyncSmtpConnection` (EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA,
//! QUIT), each step under the configured time limit.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr as _;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, Identity, TlsParameters,
};
use lettre::transport::smtp::extension::{ClientId, Extension};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::smtp_limits::{Failure, describe, describe_cause, error_chain, seconds};
pub(super) use super::smtp_limits::{Limits, within};
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

/// How the session is encrypted.
enum Security {
    /// TLS from the first byte (port 465): our rustls handshake, then SMTP inside it.
    Implicit {
        connector: TlsConnector,
        server_name: ServerName<'static>,
    },
    /// EHLO in clear, then STARTTLS (required: no STARTTLS offered, nothing else is sent).
    Starttls(TlsParameters),
}

pub struct SmtpSender {
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
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

/// The mechanisms offered when credentials are configured, in order of preference.
const MECHANISMS: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

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
        let server_name = tls::server_name(host).map_err(|e| config_err(&e))?;
        let client_cert = match (&settings.client_certificate, &settings.client_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err(config_err("client_certificate and client_key go together")),
        };
        let security = match settings.tls {
            // Same trust as for IMAP: `ca_file` only when set, the client certificate (whole
            // chain) as identity, the server name checked against `host` (DNS name or IP).
            TlsMode::Implicit => Security::Implicit {
                connector: TlsConnector::from(tls::client_config(
                    settings.ca_file.as_deref(),
                    client_cert,
                )?),
                server_name,
            },
            TlsMode::Starttls => {
                Security::Starttls(lettre_tls_parameters(host, settings, client_cert)?)
            }
        };
        let credentials = match (&settings.username, &settings.password_file) {
            (Some(user), Some(path)) => {
                let password = read_secret(path).map_err(|e| MailError::file(path, e))?;
                Some(Credentials::new(user.clone(), password))
            }
            (None, None) => None,
            (Some(_), None) => return Err(config_err("username is set but password_file is not")),
            (None, Some(_)) => return Err(config_err("password_file is set but username is not")),
        };
        Ok(SmtpSender {
            security,
            credentials,
            hello: ClientId::default(),
            timeout: Duration::from_secs(settings.timeout_seconds.max(1)),
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
        let (envelope, body) = prepare(envelope_from, recipients, raw)?;
        let body = &body[..];
        let limits = Limits::new(self.timeout);
        let mut conn = self.open(&limits).await.map_err(|f| self.classify(f))?;
        let limit = self.message_limit(&limits, body.len());
        let sent = within("send", limit, conn.send(&envelope, body)).await;
        match sent {
            Ok(_) => {
                // Accepted: QUIT is a courtesy whose failure changes nothing.
                let _ = tokio::time::timeout(limits.of(self.timeout), conn.abort()).await;
                Ok(())
            }
            // On an SMTP error lettre has already sent QUIT and closed; on a timeout the
            // connection is dropped here.
            Err(f) => Err(self.classify(f)),
        }
    }

    /// MAIL, RCPT, DATA, the body and the final reply: the time limit, plus the time to upload
    /// the body at 16 KiB/s (a slow link must not turn a large message into a timeout, hence a
    /// retry and perhaps a duplicate), within what is left of the session.
    pub(super) fn message_limit(&self, limits: &Limits, body_len: usize) -> Duration {
        limits.of(self.timeout + Duration::from_secs(body_len as u64 / 16_384))
    }

    /// The time limit of one step.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// TCP (with `TCP_NODELAY`), TLS (implicit, or STARTTLS after the first EHLO), EHLO, AUTH.
    pub(super) async fn open(&self, limits: &Limits) -> Result<AsyncSmtpConnection, Failure> {
        let tcp = self.connect_tcp(limits).await?;
        let mut conn = match &self.security {
            Security::Implicit {
                connector,
                server_name,
            } => {
                let handshake = connector.connect(server_name.clone(), tcp);
                let limit = limits.step();
                let stream = match tokio::time::timeout(limit, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        return Err(Failure::Io {
                            step: "tls",
                            message: error_chain(&e),
                        });
                    }
                    Err(_) => {
                        return Err(Failure::Timeout { step: "tls", limit });
                    }
                };
                let greeting = AsyncSmtpConnection::connect_with_transport(
                    Box::new(TlsOverTcp(stream)),
                    &self.hello,
                );
                within("greeting", limits.step(), greeting).await?
            }
            Security::Starttls(parameters) => {
                let greeting =
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello);
                let mut conn = within("greeting", limits.step(), greeting).await?;
                if !conn.server_info().supports_feature(Extension::StartTls) {
                    // Dropped without a word more: no AUTH, no MAIL in clear.
                    return Err(Failure::Io {
                        step: "starttls",
                        message: "the server does not offer STARTTLS; refusing to go on in clear"
                            .into(),
                    });
                }
                let upgrade = conn.starttls(parameters.clone(), &self.hello);
                within("starttls", limits.step(), upgrade).await?;
                if !conn.is_encrypted() {
                    return Err(Failure::Io {
                        step: "starttls",
                        message: "the connection is still in clear after STARTTLS".into(),
                    });
                }
                conn
            }
        };
        if let Some(credentials) = &self.credentials {
            let auth = conn.auth(&MECHANISMS, credentials);
            within("authenticate", limits.step(), auth).await?;
        }
        Ok(conn)
    }

    /// Each resolved address in turn, each under the time limit (as lettre did), with Nagle's
    /// algorithm switched off.
    async fn connect_tcp(&self, limits: &Limits) -> Result<TcpStream, Failure> {
        let io_err = |message: String| Failure::Io {
            step: "connect",
            message,
        };
        let limit = limits.step();
        let addrs = match tokio::time::timeout(
            limit,
            tokio::net::lookup_host((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(e)) => return Err(io_err(e.to_string())),
            Err(_) => {
                return Err(Failure::Timeout {
                    step: "connect",
                    limit,
                });
            }
        };
        let mut last = None;
        for addr in addrs {
            let limit = limits.step();
            match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::warn!(%addr, "smtp: cannot set TCP_NODELAY: {e}");
                    }
                    return Ok(tcp);
                }
                Ok(Err(e)) => last = Some(format!("{addr}: {e}")),
                Err(_) => last = Some(format!("{addr}: no answer within {}", seconds(limit))),
            }
        }
        Err(io_err(last.unwrap_or_else(|| {
            "the host name resolves to no address".into()
        })))
    }

    pub(super) fn classify(&self, failure: Failure) -> SendError {
        let message = format!("smtp {}:{}: {}", self.host, self.port, describe(&failure));
        let Failure::Smtp { error: e, .. } = &failure else {
            return SendError::Temporary(message);
        };
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
        let remote = |failure: Failure| match failure {
            Failure::Timeout { step, limit } => MailError::Timeout {
                protocol: "smtp",
                host: self.host.clone(),
                port: self.port,
                step,
                seconds: limit.as_secs(),
            },
            Failure::Smtp { step, .. } | Failure::Io { step, .. } => MailError::Remote {
                protocol: "smtp",
                host: self.host.clone(),
                port: self.port,
                step,
                message: describe_cause(&failure),
            },
        };
        let limits = Limits::new(self.timeout);
        let mut conn = self.open(&limits).await.map_err(remote)?;
        let connected = tokio::time::timeout(limits.step(), conn.test_connected())
            .await
            .unwrap_or(false);
        within("quit", limits.step(), conn.quit())
            .await
            .map_err(remote)?;
        Ok(connected)
    }
}

/// The envelope and the body as sent: bare LF turned into CRLF, without the final CRLF (lettre
/// always ends DATA with "\r\n.\r\n", so ours would become an extra empty line).
pub(super) fn prepare<'a>(
    envelope_from: &str,
    recipients: &[String],
    raw: &'a [u8],
) -> Result<(Envelope, std::borrow::Cow<'a, [u8]>), SendError> {
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
    let body = match normalize_crlf(raw) {
        std::borrow::Cow::Borrowed(b) => {
            std::borrow::Cow::Borrowed(b.strip_suffix(b"\r\n").unwrap_or(b))
        }
        std::borrow::Cow::Owned(mut b) => {
            if b.ends_with(b"\r\n") {
                b.truncate(b.len() - 2);
            }
            std::borrow::Cow::Owned(b)
        }
    };

    Ok((envelope, body))
}

/// lettre's TLS parameters for STARTTLS: `ca_file` as the only root when set, the client
/// certificate as identity, `host` as the name to verify.
fn lettre_tls_parameters(
    host: &str,
    settings: &SmtpSettings,
    client_cert: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<TlsParameters, MailError> {
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
    if let Some((cert, key)) = client_cert {
        let chain = tls::load_certs(cert)?;
        let key_pem = tls::read_private_key_pem(key)?;
        // lettre's rustls Identity::from_pem takes the certificate as DER (leaf only).
        let identity = Identity::from_pem(chain[0].as_ref(), &key_pem)
            .map_err(|e| MailError::file(key, format!("client certificate and key: {e}")))?;
        params = params.identify_with(identity);
    }
    params.build_rustls().map_err(|e| MailError::Config {
        protocol: "smtp",
        message: format!("TLS parameters: {e}"),
    })
}

/// Our implicit-TLS stream, in the shape lettre accepts as an existing connection (lettre then
/// treats it as a plain stream: it never offers STARTTLS on it, which is what we want).
#[derive(Debug)]
struct TlsOverTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for TlsOverTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for TlsOverTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsOverTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn settings(port: u16) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::Starttls,
            username: None,
            password_file: None,
            client_certificate: None,
            client_key: None,
            ca_file: None,
            timeout_seconds: 1,
        }
    }

    #[tokio::test]
    async fn nagle_is_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sender = SmtpSender::new(&settings(port)).unwrap();
        let Ok(tcp) = sender.connect_tcp(&Limits::new(sender.timeout)).await else {
            panic!("no connection to the local listener");
        };
        assert!(tcp.nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_silent_server_is_a_temporary_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (_sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let started = Instant::now();
        let err = SmtpSender::new(&settings(port))
            .unwrap()
            .send_raw("a@hopital.test", &["b@hopital.test".into()], b"x\r\n")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SendError::Temporary(t) if t.contains("greeting: no answer within")),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        server.abort();
    }
}
