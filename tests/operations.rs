//! Operations through a real Postfix and Dovecot: the Prometheus endpoint moves with the mail and
//! passes `promtool check metrics`; `status` tells the truth (healthy, a failed outbox row, IMAP
//! unreachable) in its exit code; reads of patient data are audited with the OS user; a closed
//! pipe ends a command quietly; `backup` copies a live SQLite database under load and the copy
//! restores.

mod common;
#[path = "common/gateway.rs"]
mod gateway;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{MailSystem, compose, compose_signed_encrypted, user_email};
use gateway::{Db, GATEWAY, Gateway};
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn case1() -> String {
    std::fs::read_to_string(common::repo_root().join("tests/data/forms/case1_mycoplasme.txt"))
        .unwrap()
}

fn send_request(mail: &MailSystem, subject: &str) {
    let raw = compose_signed_encrypted(
        "gp",
        "teleexpertise+infectio@hopital.test",
        "gateway",
        subject,
        // a distinct signed text: the same one signed in the same second is a replay
        &format!("{}\n-- \n{subject}\n", case1()),
        &[],
    );
    mail.send_raw(
        &user_email("gp"),
        &["teleexpertise+infectio@hopital.test"],
        &raw,
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET /metrics as Prometheus does: (content type, body).
fn scrape(port: u16) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    (ctype, body.to_string())
}

/// Samples of the text format: `name{k="v",…}` (labels sorted) → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut l: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                l.sort();
                format!("{name}{{{}}}", l.join(","))
            }
            None => series.to_string(),
        };
        out.insert(key, value.parse().unwrap_or(f64::NAN));
    }
    out
}

fn get(s: &BTreeMap<String, f64>, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {s:#?}"))
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/install-test-deps.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn status(gw: &Gateway, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["status", "--format", "json"];
    args.extend_from_slice(extra);
    let out = gw.cli(&args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// The `operator.read` rows of an `audit list --format json`.
fn operator_reads(trail: &Value) -> Vec<&Value> {
    trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "operator.read")
        .collect()
}

#[test]
fn metrics_move_with_the_mail_reads_are_audited_and_status_is_healthy() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    gw.start_with_env(&[("TELEAVIS__METRICS__LISTEN", &listen)]);

    let (ctype, before) = scrape(port);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    promtool_check(&before);
    let s = samples(&before);
    assert_eq!(
        get(&s, r#"teleavis_inbound_total{outcome="processed"}"#),
        0.0
    );
    let build = format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"));
    assert!(
        s.iter()
            .any(|(k, v)| k.starts_with("teleavis_build_info{") && k.contains(&build) && *v == 1.0),
        "{before}"
    );
    assert_eq!(
        get(
            &s,
            r#"teleavis_threads{category="infectio",status="nouvelle"}"#
        ),
        0.0
    );

    // A request and a stray unsigned message.
    send_request(&mail, "Demande d'avis");
    let unsigned = compose(&[
        "--from",
        "inconnu@cabinet.test",
        "--to",
        GATEWAY,
        "--subject",
        "Bonjour",
        "--body",
        "Pas de signature.",
    ]);
    mail.send_raw("inconnu@cabinet.test", &[GATEWAY], &unsigned);
    assert!(
        mail.wait_for_count(GATEWAY, "Traités", 1, T),
        "{}",
        gw.log()
    );
    assert!(
        mail.wait_for_count(GATEWAY, "Quarantaine", 1, T),
        "{}",
        gw.log()
    );
    // The acknowledgement and the forward leave the outbox.
    let after = gw.wait_until("the ack and forward to be sent", T, || {
        let (_, text) = scrape(port);
        let s = samples(&text);
        let sent = |k: &str| {
            s.get(&format!(r#"teleavis_outbox_sent_total{{kind="{k}"}}"#))
                .copied()
                .unwrap_or(0.0)
        };
        (sent("ack") >= 1.0 && sent("forward") >= 1.0).then_some(text)
    });
    promtool_check(&after);
    let s = samples(&after);
    assert_eq!(
        get(&s, r#"teleavis_inbound_total{outcome="processed"}"#),
        1.0
    );
    assert_eq!(
        get(&s, r#"teleavis_inbound_total{outcome="quarantined"}"#),
        1.0
    );
    assert_eq!(
        get(&s, r#"teleavis_quarantine_total{reason="unsigned"}"#),
        1.0
    );
    assert_eq!(get(&s, "teleavis_intake_duration_seconds_count"), 2.0);
    assert!(get(&s, "teleavis_intake_duration_seconds_sum") > 0.0);
    assert_eq!(
        get(&s, r#"teleavis_intake_duration_seconds_bucket{le="+Inf"}"#),
        2.0
    );
    assert_eq!(
        get(
            &s,
            r#"teleavis_threads{category="infectio",status="nouvelle"}"#
        ),
        1.0
    );
    assert_eq!(get(&s, "teleavis_imap_connected"), 1.0);
    assert_eq!(get(&s, "teleavis_mailbox_lease_held"), 1.0);
    assert!(get(&s, r#"teleavis_outbox_messages{state="sent"}"#) >= 2.0);
    assert_eq!(
        get(&s, r#"teleavis_deadline_overdue{category="infectio"}"#),
        0.0
    );
    assert!(s.contains_key("teleavis_outbox_oldest_pending_seconds"));
    // No address, subject or patient data in any label.
    for key in s.keys() {
        assert!(
            !key.contains('@') && !key.contains("Demande"),
            "label leak: {key}"
        );
    }

    // status: healthy, and says who reads the mailbox.
    let (code, v) = gw.wait_until("a healthy status", T, || {
        let (code, v) = status(&gw, &[]);
        (code == Some(0)).then_some((code, v))
    });
    assert_eq!(code, Some(0));
    assert_eq!(v["healthy"], true, "{v:#}");
    assert!(
        v["lease_holder"].as_str().is_some_and(|h| !h.is_empty()),
        "{v:#}"
    );
    assert_eq!(v["quarantine_24h"]["unsigned"], 1, "{v:#}");
    assert!(v["audit_head"]["hash"].as_str().is_some(), "{v:#}");
    assert!(
        v["version"]
            .as_str()
            .unwrap()
            .starts_with(env!("CARGO_PKG_VERSION"))
    );
    let text = gw.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).starts_with("teleavis OK - "),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // Reading the thread is audited with the OS user; the trail answers "who read it".
    let id = gw.threads()[0]["id"].as_str().unwrap().to_string();
    let shown = gw.cli(&["threads", "show", &id]);
    assert!(shown.status.success());
    let report = gw.cli(&["report", &id]);
    assert!(report.status.success());
    let q = gw.quarantine()[0]["id"].as_i64().unwrap();
    assert!(
        gw.cli(&["quarantine", "show", &q.to_string()])
            .status
            .success()
    );
    let me = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let me = format!("os:{}", me.trim());
    let trail = gw.cli_json(&["audit", "list", "--subject", &id, "--format", "json"]);
    let reads = operator_reads(&trail);
    assert_eq!(reads.len(), 2, "{trail:#}");
    assert!(
        reads
            .iter()
            .all(|r| r["actor"].as_str() == Some(me.as_str())),
        "{trail:#}"
    );
    assert_eq!(reads[0]["details"]["command"], "threads show");
    assert_eq!(reads[1]["details"]["command"], "report");
    assert!(
        trail.as_array().unwrap()[0]["action"] != "operator.read",
        "the thread's own history comes first: {trail:#}"
    );
    let q_trail = gw.cli_json(&[
        "audit",
        "list",
        "--subject",
        &format!("inbound:{q}"),
        "--format",
        "json",
    ]);
    let q_reads = operator_reads(&q_trail);
    assert_eq!(q_reads.len(), 1, "{q_trail:#}");
    assert_eq!(q_reads[0]["details"]["command"], "quarantine show");
    let table = String::from_utf8(gw.cli(&["audit", "list", "--subject", &id]).stdout).unwrap();
    assert!(
        table.contains("operator.read") && table.contains(&me),
        "{table}"
    );
    assert!(gw.cli(&["audit", "verify"]).status.success());

    // A closed pipe (`| head` that has stopped reading): quiet, exit 0, and still audited.
    for args in [
        vec!["threads", "show", id.as_str()],
        vec!["threads", "list"],
        vec!["audit", "list"],
        vec!["status"],
    ] {
        let mut child = Command::new(Gateway::bin())
            .arg("--config")
            .arg(&gw.config)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first line
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
    let trail = gw.cli_json(&["audit", "list", "--subject", &id, "--format", "json"]);
    assert_eq!(
        operator_reads(&trail).len(),
        3,
        "the cut-short read is on record too"
    );
    gw.stop();
}

#[test]
fn status_exits_1_on_a_failed_outbox_row() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    // As in tests/outbox.rs: a message Postfix accepts then bounces (no certificate: signed only).
    gw.start_with_env(&[("TELEAVIS__SMIME__ENCRYPT_OUTGOING", "when-possible")]);
    let (code, v) = gw.wait_until("a healthy status first", T, || {
        let (code, v) = status(&gw, &[]);
        (code == Some(0)).then_some((code, v))
    });
    assert_eq!((code, &v["healthy"]), (Some(0), &Value::Bool(true)));

    gw.enqueue_notice("quelquun@ailleurs.example");
    let v = gw.wait_until("status to see the failed row", T, || {
        let (code, v) = status(&gw, &[]);
        (code == Some(1)).then_some(v)
    });
    assert_eq!(v["healthy"], false);
    assert_eq!(v["outbox"]["failed"], 1, "{v:#}");
    let problems = v["problems"].to_string();
    assert!(problems.contains("1 outbox row(s) failed"), "{v:#}");
    let text = gw.cli(&["status"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .starts_with("teleavis ATTENTION - 1 outbox row(s) failed"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    // Out of the window it no longer needs a person.
    let (code, _) = status(&gw, &["--failed-hours", "0"]);
    assert_eq!(code, Some(0));
    gw.stop();
}

#[test]
fn status_exits_1_when_imap_is_unreachable() {
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    gw.wait_until("a healthy status first", T, || {
        let (code, v) = status(&gw, &["--imap-max-age", "3"]);
        (code == Some(0) && v["instances"][0]["imap_connected"] == true).then_some(())
    });
    mail.stop_dovecot();
    let started = Instant::now();
    let v = gw.wait_until("status to see IMAP gone", T, || {
        let (code, v) = status(&gw, &["--imap-max-age", "3"]);
        (code == Some(1)).then_some(v)
    });
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert!(
        v["problems"].to_string().contains("no IMAP contact"),
        "{v:#}"
    );
    assert_eq!(v["instances"][0]["imap_connected"], false, "{v:#}");
    // With the default 5 minutes a short outage is not yet a problem.
    let (code, _) = status(&gw, &[]);
    assert_eq!(code, Some(0));
    mail.start_dovecot();
    gw.wait_until("status healthy again", T, || {
        let (code, _) = status(&gw, &["--imap-max-age", "3"]);
        (code == Some(0)).then_some(())
    });
    gw.stop();
    // No daemon at all: nobody reads the mailbox.
    let (code, v) = status(&gw, &[]);
    assert_eq!(code, Some(1));
    assert!(
        v["problems"].to_string().contains("no teleavis instance"),
        "{v:#}"
    );
}

/// `teleavis` on the configuration of `gw` but another SQLite file (a backup copy).
fn cli_on(gw: &Gateway, db: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(Gateway::bin())
        .arg("--config")
        .arg(&gw.config)
        .args(args)
        .env(
            "TELEAVIS__DATABASE__URL",
            format!("sqlite://{}", db.display()),
        )
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn json_on(gw: &Gateway, db: &std::path::Path, args: &[&str]) -> Value {
    let out = cli_on(gw, db, args);
    assert!(
        out.status.success(),
        "{args:?} on {}: {}",
        db.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A copy is consistent when its audit chain verifies and every thread in it has the audit row
/// of its own opening: both are written in the message's one transaction.
fn check_copy(gw: &Gateway, copy: &std::path::Path) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a backup holds patient data");
    let verify = cli_on(gw, copy, &["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let threads = json_on(gw, copy, &["threads", "list", "--format", "json"]);
    let threads = threads.as_array().unwrap();
    for t in threads {
        let id = t["id"].as_str().unwrap();
        let trail = json_on(
            gw,
            copy,
            &["audit", "list", "--subject", id, "--format", "json"],
        );
        assert!(
            trail
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "thread.opened"),
            "{id} in the copy without its audit row: {trail:#}"
        );
    }
    threads.len()
}

#[test]
fn backup_under_load_is_consistent_and_restores() {
    const N: usize = 12;
    let mail = MailSystem::start();
    let mut gw = Gateway::new(&mail, Db::Sqlite);
    gw.start();
    // Composed beforehand (openssl), sent while the copies are taken.
    let raws: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            compose_signed_encrypted(
                "gp",
                "teleexpertise+infectio@hopital.test",
                "gateway",
                &format!("Demande d'avis {i}"),
                &format!("{}\n-- \nDemande d'avis {i}\n", case1()),
                &[],
            )
        })
        .collect();
    let backups = tempfile::tempdir().unwrap();
    let mut counts = Vec::new();
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            for raw in &raws {
                mail.send_raw(
                    &user_email("gp"),
                    &["teleexpertise+infectio@hopital.test"],
                    raw,
                );
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        let mut i = 0;
        while !sender.is_finished() || i < 2 {
            let file = backups.path().join(format!("copy-{i}.db"));
            let out = gw.cli(&["backup", file.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "backup under load: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("consistent copy"));
            counts.push(check_copy(&gw, &file));
            i += 1;
        }
        sender.join().unwrap();
    });
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "copies went back in time: {counts:?}"
    );
    gw.wait_until("every request to have its thread", T, || {
        (gw.threads().len() == N).then_some(())
    });
    // No half-written file is left beside the copies.
    let leftovers: Vec<_> = std::fs::read_dir(backups.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The last copy, taken once everything is in, holds everything; overwriting works.
    let last = backups.path().join("last.db");
    std::fs::write(&last, b"yesterday's copy").unwrap();
    assert!(gw.cli(&["backup", last.to_str().unwrap()]).status.success());
    assert_eq!(check_copy(&gw, &last), N);

    // Restore: stop, put the copy in place, start; the gateway carries on from it.
    gw.stop();
    let live = gw.dir.path().join("teleavis.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", live.display()));
    }
    std::fs::copy(&last, &live).unwrap();
    gw.start();
    send_request(&mail, "Après restauration");
    let threads = gw.wait_until("the request after the restore", T, || {
        let t = gw.threads();
        (t.len() == N + 1).then_some(t)
    });
    let mut ids: Vec<&str> = threads.iter().map(|t| t["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), N + 1, "thread numbers reused after the restore");
    assert!(gw.cli(&["audit", "verify"]).status.success());

    // PostgreSQL is pg_dump's job: a usage error naming it, before any connection.
    let out = Command::new(Gateway::bin())
        .arg("--config")
        .arg(&gw.config)
        .args(["backup", "/tmp/never-written.db"])
        .env(
            "TELEAVIS__DATABASE__URL",
            "postgres://postgres@127.0.0.1:5432/test",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    assert!(!std::path::Path::new("/tmp/never-written.db").exists());
    gw.stop();
}

#[test]
fn a_bad_metrics_address_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("teleavis.toml");
    // The development configuration with made-up paths: those are reported too, and so must be
    // the metrics address, in the same run.
    let template = std::fs::read_to_string(common::repo_root().join("config/dev.toml.in")).unwrap();
    let text = template
        .replace("@DATABASE_URL@", "sqlite:///tmp/teleavis.db")
        .replace("@DIR@", "/nonexistent")
        .replace("@PKI@", "/nonexistent")
        .replace("@IMAPS_PORT@", "993")
        .replace("@SUBMISSION_PORT@", "587")
        .replace("@CIPHER@", "aes-256-gcm");
    std::fs::write(
        &cfg,
        format!("{text}\n[metrics]\nlisten = \"partout:9464\"\n"),
    )
    .unwrap();
    let out = Command::new(Gateway::bin())
        .arg("--config")
        .arg(&cfg)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = format!("{}: metrics.listen: ", cfg.display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&line) && l.contains("partout:9464")),
        "{err}"
    );
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(Gateway::bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("teleavis {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(shown.starts_with(&prefix), "{shown}");
    // In a git checkout it is HEAD, abbreviated as build.rs does.
    if let Ok(o) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(common::repo_root())
        .output()
        && o.status.success()
    {
        let head = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(shown.trim(), format!("{prefix}{head})"));
    }
}

/// Two instances on one PostgreSQL database: `status` and the gauges name the one that holds
/// the mailbox lease, and a SIGKILL hands it over.
#[test]
fn postgres_status_and_metrics_name_the_lease_holder() {
    if !gateway::postgres_available() {
        return;
    }
    let mail = MailSystem::start();
    let mut a = Gateway::new(&mail, Db::Postgres);
    let mut b = a.sharing_database();
    let (pa, pb) = (free_port(), free_port());
    a.start_with_env(&[("TELEAVIS__METRICS__LISTEN", &format!("127.0.0.1:{pa}"))]);
    b.start_with_env(&[("TELEAVIS__METRICS__LISTEN", &format!("127.0.0.1:{pb}"))]);
    let v = a.wait_until("both instances in status, one holding the lease", T, || {
        let (code, v) = status(&a, &[]);
        let n = v["instances"].as_array().map_or(0, |i| i.len());
        (code == Some(0) && n == 2 && v["lease_holder"].is_string()).then_some(v)
    });
    let holder = v["lease_holder"].as_str().unwrap().to_string();
    let held: Vec<bool> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["lease_held"] == true)
        .collect();
    assert_eq!(held.iter().filter(|h| **h).count(), 1, "{v:#}");
    let gauge = |port| get(&samples(&scrape(port).1), "teleavis_mailbox_lease_held");
    let (ga, gb) = (gauge(pa), gauge(pb));
    assert_eq!(ga + gb, 1.0, "exactly one instance says it holds the lease");
    for port in [pa, pb] {
        promtool_check(&scrape(port).1);
    }
    // The holder dies: the other takes the lease over, and status says so.
    let (dead, alive) = if ga == 1.0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    dead.kill();
    let v = alive.wait_until("the lease to change hands", T, || {
        let (_, v) = status(alive, &[]);
        v["lease_holder"]
            .as_str()
            .is_some_and(|h| h != holder)
            .then_some(v)
    });
    assert_ne!(v["lease_holder"], Value::String(holder));
    let port = if ga == 1.0 { pb } else { pa };
    alive.wait_until("the survivor's gauge", T, || {
        (gauge(port) == 1.0).then_some(())
    });
    alive.stop();
}
