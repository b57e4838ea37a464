//! The teleavis daemon under test: a configuration made from `config/dev.toml.in` for a
//! running [`MailSystem`](super::MailSystem), the real binary started and stopped as systemd
//! would (SIGTERM) or killed (SIGKILL), the command line, and the database it writes.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use teleavis::address::EmailAddress;
use teleavis::mail::compose::Outgoing;

use crate::common::{MailSystem, pki, repo_root};

pub const GATEWAY: &str = "teleexpertise@hopital.test";
pub const ADMIN: &str = "dsi@hopital.test";
pub const INFECTIO: &str = "infectio@hopital.test";
pub const PNEUMO: &str = "pneumo@hopital.test";

/// Which database the gateway uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db_url: String,
    pg_database: Option<String>,
    child: Option<Child>,
    log: PathBuf,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Whether the local PostgreSQL answers; when it does not, a loud notice, and a failure when
/// `TELEAVIS_REQUIRE_POSTGRES=1` (the test command sets it when PostgreSQL is installed).
pub fn postgres_available() -> bool {
    let ok = Command::new("psql")
        .args([PG_ADMIN, "-qAtc", "SELECT 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("TELEAVIS_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "PostgreSQL unreachable at 127.0.0.1:5432 but TELEAVIS_REQUIRE_POSTGRES=1"
        );
        eprintln!(
            "\n!!!!! NOTICE: PostgreSQL unreachable at 127.0.0.1:5432: PostgreSQL test SKIPPED !!!!!\n"
        );
    }
    ok
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([PG_ADMIN, "-qAtc", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

impl Gateway {
    pub fn new(mail: &MailSystem, db: Db) -> Gateway {
        Self::with(mail, db, &[])
    }

    /// `overrides` fill the template's other placeholders: `("cipher", "aes-256-cbc")`. Other
    /// settings are changed the way operators do, with `TELEAVIS__SECTION__KEY` at start.
    pub fn with(mail: &MailSystem, db: Db, overrides: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("teleavis-gw-")
            .tempdir()
            .expect("temp dir");
        let pki = pki();
        // Group mailboxes and the admin have no signed mail to learn from: their certificates
        // are placed in recipients_dir, as an operator would.
        for name in ["infectio", "pneumo", "admin"] {
            let _ = std::fs::copy(
                pki.join(format!("users/{name}.crt")),
                pki.join(format!("recipients/{name}.pem")),
            );
        }
        let (db_url, pg_database) = match db {
            Db::Sqlite => (
                format!("sqlite://{}/teleavis.db", dir.path().display()),
                None,
            ),
            Db::Postgres => {
                let name = format!("teleavis_e2e_{}_{}", std::process::id(), rand_suffix());
                psql(&format!("CREATE DATABASE {name}"));
                (
                    format!("postgres://postgres@127.0.0.1:5432/{name}"),
                    Some(name),
                )
            }
        };
        let mut cipher = "aes-256-gcm".to_string();
        for (k, v) in overrides {
            if *k == "cipher" {
                cipher = v.to_string();
            }
        }
        let template = std::fs::read_to_string(repo_root().join("config/dev.toml.in"))
            .expect("config/dev.toml.in");
        let text = template
            .replace("@DATABASE_URL@", &db_url)
            .replace("@DIR@", &dir.path().display().to_string())
            .replace("@PKI@", &pki.display().to_string())
            .replace("@IMAPS_PORT@", &mail.imaps_port.to_string())
            .replace("@SUBMISSION_PORT@", &mail.submission_port.to_string())
            .replace("@CIPHER@", &cipher);
        let config = dir.path().join("teleavis.toml");
        std::fs::write(&config, text).expect("write config");
        write_secret(
            &dir.path().join("imap.password"),
            &format!("{}\n", mail.password),
        );
        write_secret(
            &dir.path().join("smtp.password"),
            &format!("{}\n", mail.password),
        );
        let log = dir.path().join("teleavis.log");
        Gateway {
            dir,
            config,
            db_url,
            pg_database,
            child: None,
            log,
        }
    }

    /// A second instance on the same database, mailbox and configuration (PostgreSQL: both
    /// run, one holds the mailbox lease).
    pub fn sharing_database(&self) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("teleavis-gw-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("teleavis.log");
        Gateway {
            dir,
            config: self.config.clone(),
            db_url: self.db_url.clone(),
            pg_database: None,
            child: None,
            log,
        }
    }

    pub fn bin() -> &'static str {
        env!("CARGO_BIN_EXE_teleavis")
    }

    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// Starts `teleavis run` and waits until it is reading the mailbox.
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(Self::bin());
        cmd.arg("--config").arg(&self.config).arg("run");
        cmd.env_remove("RUST_LOG").env_remove("NOTIFY_SOCKET");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn teleavis");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.log().contains("teleavis running") {
                return;
            }
            if let Some(status) = self.try_wait() {
                panic!("teleavis exited at start ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("teleavis did not start:\n{}", self.log());
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok().flatten();
        if status.is_some() {
            self.child = None;
        }
        status
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.try_wait().is_none()
    }

    /// Waits for the daemon to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, as systemd stops it; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("teleavis did not stop on SIGTERM:\n{}", self.log()))
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `teleavis --config … ARGS`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(Self::bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run teleavis")
    }

    /// The command's stdout as JSON; panics when it fails.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "teleavis {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "teleavis {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    pub fn threads(&self) -> Vec<Value> {
        self.cli_json(&["threads", "list", "--format", "json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn quarantine(&self) -> Vec<Value> {
        self.cli_json(&["quarantine", "list", "--format", "json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `f` until it returns Some, or panics with the daemon's log.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n--- teleavis log\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Queues a notice to `to` exactly as the intake does, in its own transaction.
    pub fn enqueue_notice(&self, to: &str) -> (i64, String) {
        let settings = teleavis::config::load_and_validate(&self.config).expect("config");
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let store = self.store().await;
                let mut tx = store.begin().await.unwrap();
                let m = Outgoing {
                    from_name: settings.gateway.display_name.clone(),
                    from: settings.gateway.address.clone(),
                    to: vec![EmailAddress::parse(to).unwrap()],
                    reply_to: None,
                    subject: "Téléexpertise — Test".into(),
                    thread: None,
                    in_reply_to: None,
                    references: vec![],
                    automatic: true,
                    text: "Bonjour".into(),
                    attachments: vec![],
                    extra_headers: vec![],
                    report: None,
                };
                let r = teleavis::outbox::enqueue(
                    &store,
                    &mut tx,
                    &settings,
                    teleavis::store::OutboxKind::Notice,
                    &m,
                    Utc::now(),
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                r
            })
    }

    /// The database, through the library.
    pub async fn store(&self) -> teleavis::store::Store {
        teleavis::store::Store::connect(&self.db_url, 2)
            .await
            .expect("open the gateway database")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        if let Some(name) = &self.pg_database {
            let _ = Command::new("psql")
                .args([
                    PG_ADMIN,
                    "-qAtc",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() % 1_000_000_000
}
