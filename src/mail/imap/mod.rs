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

mod connect;
mod fetch;
mod idle;

use std::collections::HashSet;
use std::time::Duration;

use async_imap::types::UnsolicitedResponse;
use futures::TryStreamExt as _;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{MailError, utf7};

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
