//! One authenticated IMAP session over rustls (implicit TLS or STARTTLS).
//!
//! Mailbox names are given in UTF-8 and encoded here (modified UTF-7). Every network step has
//! a time limit; after any error the session state is unknown and the caller must drop the
//! client and reconnect (nothing is lost: messages stay in INBOX until `move_to` succeeds).
//!
//! Nothing is ever deleted: `move_to` uses `UID MOVE`, or, on servers without MOVE, `UID COPY`,
//! `UID STORE +FLAGS (\Deleted)` and `UID EXPUNGE` of that single UID (UIDPLUS), which never
//! touches other messages flagged `\Deleted` by someone else. Without UIDPLUS the source copy
//! is only flagged `\Deleted` (never expunged), and `uids()` skips deleted-flagged messages.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto;
use async_imap::types::UnsolicitedResponse;
use futures::TryStreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{MailError, tls, utf7};
use crate::config::{ImapAuth, ImapSettings, TlsMode, read_secret};

/// Each step of the connection: TCP connect, STARTTLS, TLS handshake, greeting, authentication.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Any single command (a FETCH of a large message included).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

type Stream = TlsStream<TcpStream>;

/// What `SELECT` tells about a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxState {
    pub uidvalidity: u32,
    pub exists: u32,
    pub uidnext: Option<u32>,
}

/// How an IDLE wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleOutcome {
    /// The server reported a change (new message, expunge, flags): look again.
    NewData,
    /// Nothing happened within the time asked for.
    Timeout,
}

pub struct ImapClient {
    session: async_imap::Session<Stream>,
    /// Upper-cased capability atoms after authentication.
    capabilities: HashSet<String>,
    host: String,
    port: u16,
    /// The server reported new mail (EXISTS/RECENT) since the last `select` or `idle_wait`.
    news: bool,
}

impl std::fmt::Debug for ImapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

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

struct Ctx<'a> {
    host: &'a str,
    port: u16,
}

impl Ctx<'_> {
    fn err(&self, step: &'static str, message: impl std::fmt::Display) -> MailError {
        MailError::Remote {
            protocol: "imap",
            host: self.host.to_string(),
            port: self.port,
            step,
            message: message.to_string(),
        }
    }
    fn timeout(&self, step: &'static str, limit: Duration) -> MailError {
        MailError::Timeout {
            protocol: "imap",
            host: self.host.to_string(),
            port: self.port,
            step,
            seconds: limit.as_secs(),
        }
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

    fn err(&self, step: &'static str, message: impl std::fmt::Display) -> MailError {
        Ctx {
            host: &self.host,
            port: self.port,
        }
        .err(step, message)
    }

    /// Whether the server announced `name` (case-insensitive), e.g. `MOVE`, `UIDPLUS`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.contains(&name.to_ascii_uppercase())
    }

    /// Acts as if the server had not announced `name` (e.g. `MOVE` on a server whose MOVE is
    /// broken; tests use it to exercise the COPY + UID EXPUNGE path).
    pub fn ignore_capability(&mut self, name: &str) {
        self.capabilities.remove(&name.to_ascii_uppercase());
    }

    pub fn has_idle(&self) -> bool {
        self.has_capability("IDLE")
    }

    /// Creates (and subscribes) every mailbox of `names` (UTF-8) that does not exist yet.
    pub async fn ensure_mailboxes(&mut self, names: &[&str]) -> Result<(), MailError> {
        let existing = self.list_all().await?;
        for name in names {
            let wire = utf7::encode(name);
            if existing.iter().any(|e| same_mailbox(e, &wire)) {
                continue;
            }
            let host = self.host.clone();
            let ctx = Ctx {
                host: &host,
                port: self.port,
            };
            if let Err(e) = limited(&ctx, "create", self.session.create(&wire)).await {
                // Another instance may have created it meanwhile.
                if !self
                    .list_all()
                    .await?
                    .iter()
                    .any(|l| same_mailbox(l, &wire))
                {
                    return Err(self.err("create", format!("{name}: {e}")));
                }
            }
            tracing::info!(mailbox = %name, "imap mailbox created");
            // Subscription only helps people looking with a mail client; not fatal.
            let _ = limited(&ctx, "subscribe", self.session.subscribe(&wire)).await;
        }
        Ok(())
    }

    /// Every mailbox name as listed (modified UTF-7).
    async fn list_all(&mut self) -> Result<Vec<String>, MailError> {
        let host = self.host.clone();
        let ctx = Ctx {
            host: &host,
            port: self.port,
        };
        let session = &mut self.session;
        limited(&ctx, "list", async move {
            let stream = session.list(Some(""), Some("*")).await?;
            let names: Vec<async_imap::types::Name> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(names.iter().map(|n| n.name().to_string()).collect())
        })
        .await
    }

    /// Selects `mailbox` (UTF-8 name) read-write.
    pub async fn select(&mut self, mailbox: &str) -> Result<MailboxState, MailError> {
        let wire = utf7::encode(mailbox);
        let host = self.host.clone();
        let ctx = Ctx {
            host: &host,
            port: self.port,
        };
        let mbox = limited(&ctx, "select", self.session.select(&wire))
            .await
            .map_err(|e| ctx.err("select", format!("{mailbox}: {e}")))?;
        // SELECT gives a fresh view: what was reported before it is no news.
        self.drain_unsolicited();
        self.news = false;
        let uidvalidity = mbox
            .uid_validity
            .ok_or_else(|| ctx.err("select", format!("{mailbox}: server sent no UIDVALIDITY")))?;
        Ok(MailboxState {
            uidvalidity,
            exists: mbox.exists,
            uidnext: mbox.uid_next,
        })
    }

    /// UIDs of the selected mailbox's messages not flagged `\Deleted`, ascending.
    pub async fn uids(&mut self) -> Result<Vec<u32>, MailError> {
        let host = self.host.clone();
        let ctx = Ctx {
            host: &host,
            port: self.port,
        };
        let set = limited(&ctx, "uid search", self.session.uid_search("UNDELETED")).await?;
        self.drain_unsolicited();
        let mut uids: Vec<u32> = set.into_iter().collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// The message's exact bytes (`BODY.PEEK[]`, the `\Seen` flag is left alone); `None` when
    /// no message has this UID any more.
    pub async fn fetch_raw(&mut self, uid: u32) -> Result<Option<Vec<u8>>, MailError> {
        self.fetch_one(uid, "uid fetch", "(UID BODY.PEEK[])", |f| {
            f.body().map(<[u8]>::to_vec)
        })
        .await
    }

    /// The message's header block alone (`BODY.PEEK[HEADER]`, up to and including the empty
    /// line), for mail too large to download; `None` when no message has this UID any more.
    pub async fn fetch_header(&mut self, uid: u32) -> Result<Option<Vec<u8>>, MailError> {
        self.fetch_one(uid, "uid fetch header", "(UID BODY.PEEK[HEADER])", |f| {
            f.header().map(<[u8]>::to_vec)
        })
        .await
    }

    /// The message's size in bytes (`RFC822.SIZE`, to refuse oversized mail before fetching
    /// it); `None` when no message has this UID any more.
    pub async fn size(&mut self, uid: u32) -> Result<Option<u32>, MailError> {
        self.fetch_one(uid, "uid fetch size", "(UID RFC822.SIZE)", |f| f.size)
            .await
    }

    /// `UID FETCH uid items`, and what `pick` takes from the response about that UID.
    async fn fetch_one<T>(
        &mut self,
        uid: u32,
        step: &'static str,
        items: &'static str,
        pick: impl Fn(&async_imap::types::Fetch) -> Option<T>,
    ) -> Result<Option<T>, MailError> {
        let host = self.host.clone();
        let ctx = Ctx {
            host: &host,
            port: self.port,
        };
        let session = &mut self.session;
        limited(&ctx, step, async move {
            let stream = session.uid_fetch(uid.to_string(), items).await?;
            let fetches: Vec<async_imap::types::Fetch> = stream.try_collect().await?;
            Ok::<_, async_imap::error::Error>(
                fetches
                    .iter()
                    .filter(|f| f.uid == Some(uid))
                    .find_map(&pick),
            )
        })
        .await
    }

    /// Moves one message of the selected mailbox to `mailbox` (UTF-8 name). See the module
    /// comment for the fallback without MOVE: only this UID is ever expunged.
    pub async fn move_to(&mut self, uid: u32, mailbox: &str) -> Result<(), MailError> {
        let wire = utf7::encode(mailbox);
        let set = uid.to_string();
        let host = self.host.clone();
        let ctx = Ctx {
            host: &host,
            port: self.port,
        };
        let what = |e: MailError| match e {
            MailError::Remote {
                protocol,
                host,
                port,
                step,
                message,
            } => MailError::Remote {
                protocol,
                host,
                port,
                step,
                message: format!("uid {uid} to {mailbox}: {message}"),
            },
            other => other,
        };
        if self.has_capability("MOVE") {
            limited(&ctx, "uid move", self.session.uid_mv(&set, &wire))
                .await
                .map_err(what)?;
        } else {
            let uidplus = self.has_capability("UIDPLUS");
            limited(&ctx, "uid copy", self.session.uid_copy(&set, &wire))
                .await
                .map_err(what)?;
            let session = &mut self.session;
            limited(&ctx, "uid store", async {
                let s = session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?;
                let _: Vec<_> = s.try_collect().await?;
                Ok::<_, async_imap::error::Error>(())
            })
            .await
            .map_err(what)?;
            if uidplus {
                limited(&ctx, "uid expunge", async {
                    let s = session.uid_expunge(&set).await?;
                    let _: Vec<_> = s.try_collect().await?;
                    Ok::<_, async_imap::error::Error>(())
                })
                .await
                .map_err(what)?;
            } else {
                tracing::warn!(
                    uid,
                    "server has neither MOVE nor UIDPLUS: source left flagged \\Deleted, not expunged"
                );
            }
        }
        self.drain_unsolicited();
        Ok(())
    }

    /// Waits in IDLE up to `timeout` for a change in the selected mailbox. New mail the server
    /// reported during earlier commands counts too (no wake-up is lost between a search and the
    /// IDLE). The session is handed back, as async-imap's IDLE handle does; on error it is gone
    /// (reconnect). Without the IDLE capability this sleeps `timeout` and sends a NOOP, so pass
    /// the polling interval then.
    pub async fn idle_wait(
        mut self,
        timeout: Duration,
    ) -> Result<(ImapClient, IdleOutcome), MailError> {
        use async_imap::extensions::idle::IdleResponse;
        self.drain_unsolicited();
        if std::mem::take(&mut self.news) {
            return Ok((self, IdleOutcome::NewData));
        }
        if !self.has_idle() {
            tokio::time::sleep(timeout).await;
            self.noop().await?;
            let outcome = if std::mem::take(&mut self.news) {
                IdleOutcome::NewData
            } else {
                IdleOutcome::Timeout
            };
            return Ok((self, outcome));
        }
        let ImapClient {
            session,
            capabilities,
            host,
            port,
            news: _,
        } = self;
        let ctx = Ctx { host: &host, port };
        let unsolicited = session.unsolicited_responses.clone();
        let mut handle = session.idle();
        limited(&ctx, "idle", handle.init()).await?;
        // New mail announced before the server's "+ idling" is queued, not seen by the wait.
        let mut early = false;
        while let Ok(r) = unsolicited.try_recv() {
            early |= matches!(
                r,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        let outcome = if early {
            IdleOutcome::NewData
        } else {
            let (wait, _stop) = handle.wait_with_timeout(timeout);
            // The handle's own timeout restarts on every "* OK Still here"; bound the total.
            match tokio::time::timeout(timeout, wait).await {
                Err(_) => IdleOutcome::Timeout,
                Ok(Ok(IdleResponse::NewData(_))) => IdleOutcome::NewData,
                Ok(Ok(IdleResponse::Timeout | IdleResponse::ManualInterrupt)) => {
                    IdleOutcome::Timeout
                }
                Ok(Err(e)) => return Err(ctx.err("idle", e)),
            }
        };
        let session = limited(&ctx, "idle done", handle.done()).await?;
        let mut client = ImapClient {
            session,
            capabilities,
            host: host.clone(),
            port,
            news: false,
        };
        // New mail reported with the DONE completion counts too.
        client.drain_unsolicited();
        let outcome = if std::mem::take(&mut client.news) {
            IdleOutcome::NewData
        } else {
            outcome
        };
        Ok((client, outcome))
    }

    /// NOOP: keeps the session alive and collects pending mailbox changes.
    pub async fn noop(&mut self) -> Result<(), MailError> {
        let host = self.host.clone();
        let ctx = Ctx {
            host: &host,
            port: self.port,
        };
        limited(&ctx, "noop", self.session.noop()).await?;
        self.drain_unsolicited();
        Ok(())
    }

    /// NOOP, and whether new mail was reported since the last SELECT or look (a cheap poll of
    /// the selected mailbox: the server syncs it for a NOOP, with no notification delay).
    pub async fn has_news(&mut self) -> Result<bool, MailError> {
        self.noop().await?;
        Ok(std::mem::take(&mut self.news))
    }

    /// LOGOUT, best effort (errors are ignored: the connection is closed either way).
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.session.logout()).await;
    }

    /// Empties the unsolicited-response queue, remembering whether it announced new mail.
    fn drain_unsolicited(&mut self) {
        while let Ok(resp) = self.session.unsolicited_responses.try_recv() {
            if matches!(
                resp,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            ) {
                self.news = true;
            }
        }
    }
}

/// Runs one network step under `COMMAND_TIMEOUT`, naming it in the error.
async fn limited<T, E: std::fmt::Display>(
    ctx: &Ctx<'_>,
    step: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, MailError> {
    within(ctx, step, COMMAND_TIMEOUT, fut).await
}

/// Runs one network step under `limit`, naming it in the error.
async fn within<T, E: std::fmt::Display>(
    ctx: &Ctx<'_>,
    step: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, MailError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ctx.err(step, e)),
        Err(_) => Err(ctx.timeout(step, limit)),
    }
}

fn same_mailbox(listed: &str, wire: &str) -> bool {
    listed == wire || (listed.eq_ignore_ascii_case("INBOX") && wire.eq_ignore_ascii_case("INBOX"))
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
