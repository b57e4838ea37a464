//! Opening a session: TCP, implicit TLS or STARTTLS, the greeting and SASL authentication.

use std::sync::Arc;

use async_imap::imap_proto;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{ImapAuth, ImapSettings, TlsMode, read_secret};
use crate::mail::{MailError, tls};

use super::{COMMAND_TIMEOUT, CONNECT_TIMEOUT, Ctx, ImapClient, Stream, within};

/// SASL PLAIN: `\0user\0password`.
struct Plain<'a> {
    user: &'a str,
    password: &'a str,
}

impl async_imap::Authenticator for Plain<'_> {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }
}

/// SASL EXTERNAL with an empty authorization identity: the server takes it from the certificate.
struct External;

impl async_imap::Authenticator for External {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        Vec::new()
    }
}

impl ImapClient {
    /// Connects, sets up TLS (implicit or STARTTLS, verified against `ca_file`), authenticates
    /// (`plain`: AUTHENTICATE PLAIN, `login`: LOGIN, `external`: AUTHENTICATE EXTERNAL with the
    /// client certificate) and reads the capabilities.
    pub async fn connect(settings: &ImapSettings) -> Result<ImapClient, MailError> {
        let ctx = Ctx {
            host: &settings.host,
            port: settings.port,
        };
        // Local problems first, before any network traffic.
        let client_cert = match (&settings.client_certificate, &settings.client_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (None, None) => None,
            _ => {
                return Err(MailError::Config {
                    protocol: "imap",
                    message: "client_certificate and client_key go together".into(),
                });
            }
        };
        if settings.auth == ImapAuth::External && client_cert.is_none() {
            return Err(MailError::Config {
                protocol: "imap",
                message: "auth = \"external\" needs client_certificate and client_key".into(),
            });
        }
        let password = match settings.auth {
            ImapAuth::External => None,
            ImapAuth::Plain | ImapAuth::Login => {
                let path = settings
                    .password_file
                    .as_deref()
                    .ok_or_else(|| MailError::Config {
                        protocol: "imap",
                        message: "auth = \"plain\" or \"login\" needs password_file".into(),
                    })?;
                Some(read_secret(path).map_err(|e| MailError::file(path, e))?)
            }
        };
        let config = tls::client_config(settings.ca_file.as_deref(), client_cert)?;
        let server_name = tls::server_name(&settings.host).map_err(|e| ctx.err("connect", e))?;

        let stream = Self::open(&ctx, settings.tls, config, server_name).await?;
        let mut client = async_imap::Client::new(stream);
        if settings.tls == TlsMode::Implicit {
            let greeting = within(&ctx, "greeting", CONNECT_TIMEOUT, client.read_response())
                .await?
                .ok_or_else(|| ctx.err("greeting", "connection closed"))?;
            check_greeting(&ctx, greeting.parsed())?;
        }
        let user = settings.username.as_str();
        let password = password.as_deref().unwrap_or_default();
        let auth = async {
            match settings.auth {
                ImapAuth::Plain => client.authenticate("PLAIN", Plain { user, password }).await,
                ImapAuth::Login => client.login(user, password).await,
                ImapAuth::External => client.authenticate("EXTERNAL", External).await,
            }
            .map_err(|(e, _)| e)
        };
        let mut session = within(&ctx, "authenticate", CONNECT_TIMEOUT, auth).await?;

        let caps = tokio::time::timeout(COMMAND_TIMEOUT, session.capabilities())
            .await
            .map_err(|_| ctx.timeout("capability", COMMAND_TIMEOUT))?
            .map_err(|e| ctx.err("capability", e))?;
        let capabilities = caps
            .iter()
            .map(|c| match c {
                async_imap::types::Capability::Imap4rev1 => "IMAP4REV1".to_string(),
                async_imap::types::Capability::Auth(a) => {
                    format!("AUTH={}", a.to_ascii_uppercase())
                }
                async_imap::types::Capability::Atom(a) => a.to_ascii_uppercase(),
            })
            .collect();
        tracing::debug!(host = %settings.host, port = settings.port, "imap session open");
        Ok(ImapClient {
            session,
            capabilities,
            host: settings.host.clone(),
            port: settings.port,
            news: false,
        })
    }

    /// TCP, then TLS right away (implicit) or after the STARTTLS exchange on the plain stream.
    async fn open(
        ctx: &Ctx<'_>,
        mode: TlsMode,
        config: Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    ) -> Result<Stream, MailError> {
        let bare = ctx
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(ctx.host);
        let mut tcp = within(
            ctx,
            "connect",
            CONNECT_TIMEOUT,
            TcpStream::connect((bare, ctx.port)),
        )
        .await?;
        tcp.set_nodelay(true).ok();
        if mode == TlsMode::Starttls {
            let greeting = within(ctx, "greeting", CONNECT_TIMEOUT, read_line(&mut tcp)).await?;
            if !greeting.starts_with("* OK") {
                return Err(ctx.err(
                    "greeting",
                    format!("unexpected greeting {:?}", truncate(&greeting)),
                ));
            }
            within(
                ctx,
                "starttls",
                CONNECT_TIMEOUT,
                tcp.write_all(b"T0 STARTTLS\r\n"),
            )
            .await?;
            loop {
                let line = within(ctx, "starttls", CONNECT_TIMEOUT, read_line(&mut tcp)).await?;
                if line.starts_with("* ") {
                    continue;
                }
                if line.starts_with("T0 OK") {
                    break;
                }
                return Err(ctx.err(
                    "starttls",
                    format!("server refused STARTTLS: {:?}", truncate(&line)),
                ));
            }
        }
        let handshake = TlsConnector::from(config).connect(server_name, tcp);
        within(ctx, "tls", CONNECT_TIMEOUT, handshake).await
    }
}

fn check_greeting(ctx: &Ctx<'_>, greeting: &imap_proto::Response<'_>) -> Result<(), MailError> {
    match greeting {
        imap_proto::Response::Data {
            status: imap_proto::Status::Ok,
            ..
        } => Ok(()),
        other => Err(ctx.err("greeting", format!("unexpected greeting {other:?}"))),
    }
}

/// Reads one CRLF-terminated line byte by byte (so that nothing after it is consumed).
async fn read_line(tcp: &mut TcpStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    loop {
        let b = tcp.read_u8().await?;
        line.push(b);
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        if line.len() > 8192 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(120) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
