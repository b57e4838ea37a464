//! The SQLite floor of one request (see Cargo.toml): the daemon's own statements for one
//! request of `scripts/load.py --rate`, replayed on one thread with nothing around them.
//!
//! `teleavis-sqlite-floor STATEMENTS.json MIGRATIONS_DIR DB_PATH REQUESTS` prints one line per
//! message size: the run's sizes (190 KiB request, 140 KiB forward, 3 KiB ack) and empty
//! messages. STATEMENTS.json is the list of distinct statements of the daemon's
//! `sqlx::query` debug log (`run.sh` makes it); each is found by how it begins, so the replay
//! runs exactly the daemon's SQL and fails loudly when a statement it needs has changed.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use rusqlite::Connection;
use rusqlite::types::Value;

/// utime + stime of this process, in seconds (clock ticks of 1/100 s, as examples/smime_floor).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    Ok((fields[11].parse::<f64>()? + fields[12].parse::<f64>()?) / 100.0)
}

/// How each statement the replay makes begins: each must begin exactly one statement of the
/// daemon's log.
const STATEMENTS: [&str; 22] = [
    "INSERT INTO accepted_signatures",
    "INSERT INTO audit",
    "INSERT INTO inbound (",
    "INSERT INTO inbound_raw",
    "INSERT INTO outbox (",
    "INSERT INTO outbox_raw",
    "INSERT INTO recipient_certs",
    "INSERT INTO thread_counters",
    "INSERT INTO thread_deadlines",
    "INSERT INTO thread_messages",
    "INSERT INTO threads (",
    "SELECT MIN(due)",
    "SELECT address, kind, rpps",
    "SELECT category, starts_at",
    "SELECT cert_der, not_after",
    "SELECT hash FROM audit",
    "SELECT id, received_at, mailbox",
    "SELECT inbound_id, thread_id, signer",
    "UPDATE inbound SET moved_at",
    "UPDATE inbound SET outcome",
    "UPDATE outbox SET claimed_by = $1",
    "UPDATE outbox SET status = 'sent'",
];

/// The daemon's statements, found once before the timing starts (a missing or ambiguous one
/// stops the replay before it measures anything).
struct Sql(HashMap<&'static str, String>);

impl Sql {
    fn resolve(log: &[String]) -> anyhow::Result<Sql> {
        let mut found = HashMap::new();
        for start in STATEMENTS {
            let matching: Vec<&String> = log.iter().filter(|s| s.starts_with(start)).collect();
            match matching.as_slice() {
                [one] => found.insert(start, (*one).clone()),
                [] => bail!("no statement of the log begins with `{start}`"),
                _ => bail!("several statements of the log begin with `{start}`"),
            };
        }
        Ok(Sql(found))
    }

    fn get(&self, start: &str) -> anyhow::Result<&str> {
        self.0
            .get(start)
            .map(String::as_str)
            .with_context(|| format!("`{start}` is not in STATEMENTS"))
    }
}

/// Runs one statement with its `$n` parameters and reads every column of every row, as the
/// daemon's store does.
fn run(c: &Connection, sql: &str, params: &[Value]) -> anyhow::Result<usize> {
    let mut st = c.prepare_cached(sql)?;
    for (n, v) in params.iter().enumerate() {
        if let Some(i) = st.parameter_index(&format!("${}", n + 1))? {
            st.raw_bind_parameter(i, v)?;
        }
    }
    let mut rows = st.raw_query();
    let mut count = 0;
    while let Some(r) = rows.next()? {
        for i in 0..r.as_ref().column_count() {
            let _: Value = r.get(i)?;
        }
        count += 1;
    }
    Ok(count)
}

fn t(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn open(path: &str) -> anyhow::Result<Connection> {
    let c = Connection::open(path)?;
    // As Store::connect: WAL, a committed message survives a power cut.
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = 30000;",
    )?;
    Ok(c)
}

/// Bytes of the stored mail of one request: the request, the ack, the forward.
struct Sizes {
    request: usize,
    ack: usize,
    forward: usize,
}

fn replay(sql: &Sql, migrations: &Path, path: &str, n: i64, sizes: &Sizes) -> anyhow::Result<f64> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    // Two connections: the intake's and the outbox workers' (the daemon's pool has several,
    // so each sees the other's writes and rereads pages, as here).
    let intake = open(path)?;
    let mut files: Vec<_> = std::fs::read_dir(migrations)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    for f in files {
        intake.execute_batch(&std::fs::read_to_string(&f)?)?;
    }
    let outbox = open(path)?;
    let request_raw = Value::Blob(vec![7; sizes.request]);
    let ack_raw = Value::Blob(vec![8; sizes.ack]);
    let forward_raw = Value::Blob(vec![9; sizes.forward]);
    let cert = Value::Blob(vec![1; 1200]);
    let (gp, group, gw) = (
        "gp@cabinet.test",
        "infectio@hopital.test",
        "teleexpertise@hopital.test",
    );
    let ts = "2026-12-01T23:31:59.512Z";
    let mut hash = 0u64;
    let mut prev = "0".repeat(64);
    let cpu0 = cpu_seconds()?;
    for r in 1..=n {
        let mid = format!("<req{r}@cabinet.test>");
        let tid = format!("TE-2026-{r:06}");
        let digest = format!("d{r:063}");
        intake.execute_batch("BEGIN IMMEDIATE")?;
        run(
            &intake,
            sql.get("INSERT INTO inbound (")?,
            &[
                t(ts),
                t("INBOX"),
                Value::Integer(1),
                Value::Integer(r),
                t(&mid),
                t(&format!("{r:064}")),
                Value::Integer(sizes.request as i64),
                t(gp),
                t("pending"),
            ],
        )?;
        let inbound = Value::Integer(intake.last_insert_rowid());
        run(
            &intake,
            sql.get("INSERT INTO inbound_raw")?,
            &[inbound.clone(), Value::Integer(0), request_raw.clone()],
        )?;
        run(
            &intake,
            sql.get("SELECT id, received_at, mailbox")?,
            &[t(&mid)],
        )?;
        run(
            &intake,
            sql.get("INSERT INTO recipient_certs")?,
            &[
                t(gp),
                cert.clone(),
                t("2028-01-01T00:00:00.000Z"),
                t(ts),
                inbound.clone(),
            ],
        )?;
        run(
            &intake,
            sql.get("SELECT inbound_id, thread_id, signer")?,
            &[t(&digest)],
        )?;
        run(&intake, sql.get("SELECT address, kind, rpps")?, &[t(gp)])?;
        run(
            &intake,
            sql.get("INSERT INTO thread_counters")?,
            &[Value::Integer(2026)],
        )?;
        run(
            &intake,
            sql.get("INSERT INTO threads (")?,
            &[
                t(&tid),
                t("nouvelle"),
                t("infectio"),
                t(gp),
                t("Dr X"),
                t("10001234567"),
                Value::Null,
                t(&"{\"champ\":\"valeur\"}".repeat(40)),
                Value::Null,
                t(ts),
                t(ts),
                Value::Null,
            ],
        )?;
        let message = |kind: &str, direction: &str, outbox_id: Value| {
            vec![
                t(&tid),
                t(direction),
                t(kind),
                t(gp),
                t(gw),
                t(ts),
                t(&mid),
                t("Dr X"),
                t("10001234567"),
                t(&"texte ".repeat(100)),
                t("[]"),
                inbound.clone(),
                outbox_id,
            ]
        };
        let mut audit = |c: &Connection| -> anyhow::Result<()> {
            run(c, sql.get("SELECT hash FROM audit")?, &[])?;
            hash += 1;
            let h = format!("{hash:064x}");
            run(
                c,
                sql.get("INSERT INTO audit")?,
                &[
                    t(ts),
                    t(gp),
                    t("thread.opened"),
                    t(&tid),
                    t("{\"inbound_id\":1}"),
                    t(&prev),
                    t(&h),
                ],
            )?;
            prev = h;
            Ok(())
        };
        run(
            &intake,
            sql.get("INSERT INTO thread_messages")?,
            &message("request", "in", Value::Null),
        )?;
        audit(&intake)?;
        run(
            &intake,
            sql.get("INSERT INTO thread_deadlines")?,
            &[t(&tid), Value::Integer(0), t(ts), t(ts)],
        )?;
        run(&intake, sql.get("SELECT address, kind, rpps")?, &[t(group)])?;
        for (kind, to, raw) in [("ack", gp, &ack_raw), ("forward", group, &forward_raw)] {
            run(
                &intake,
                sql.get("INSERT INTO outbox (")?,
                &[
                    t(ts),
                    t(&tid),
                    t(kind),
                    t(gw),
                    t(to),
                    t("<teleavis-"),
                    t("@hopital.test>"),
                ],
            )?;
            let id = Value::Integer(intake.last_insert_rowid());
            run(
                &intake,
                sql.get("INSERT INTO outbox_raw")?,
                &[id.clone(), Value::Integer(0), raw.clone()],
            )?;
            run(
                &intake,
                sql.get("INSERT INTO thread_messages")?,
                &message(kind, "out", id),
            )?;
        }
        run(
            &intake,
            sql.get("SELECT category, starts_at")?,
            &[t("infectio"), t(ts)],
        )?;
        run(
            &intake,
            sql.get("INSERT INTO accepted_signatures")?,
            &[t(&digest), inbound.clone(), t(&tid), t(gp), t(ts)],
        )?;
        run(
            &intake,
            sql.get("UPDATE inbound SET outcome")?,
            &[
                inbound.clone(),
                t("processed"),
                Value::Null,
                Value::Null,
                t(&tid),
                t("Traités"),
            ],
        )?;
        audit(&intake)?;
        intake.execute_batch("COMMIT")?;
        run(
            &intake,
            sql.get("UPDATE inbound SET moved_at")?,
            &[inbound, t(ts)],
        )?;

        // The outbox: two claims and their certificates, two sends, the empty claim that
        // ends the drain and its MIN(due); a checkpoint a second (every fifth request at 5/s).
        let now = "2026-12-01T23:59:59.000Z";
        let claim = [t("w0"), t("2026-12-02T00:03:00.000Z"), t(now)];
        let mut claimed = Vec::new();
        for to in [gp, group] {
            let mut st = outbox.prepare_cached(sql.get("UPDATE outbox SET claimed_by = $1")?)?;
            let id: i64 = st.query_row(rusqlite::params_from_iter(claim.iter()), |row| {
                row.get("id")
            })?;
            claimed.push(id);
            run(&outbox, sql.get("SELECT cert_der, not_after")?, &[t(to)])?;
        }
        for id in claimed {
            run(
                &outbox,
                sql.get("UPDATE outbox SET status = 'sent'")?,
                &[Value::Integer(id), t(now)],
            )?;
        }
        if run(
            &outbox,
            sql.get("UPDATE outbox SET claimed_by = $1")?,
            &claim,
        )? != 0
        {
            bail!("a row was left to claim");
        }
        run(&outbox, sql.get("SELECT MIN(due)")?, &[t(now)])?;
        if r % 5 == 0 {
            outbox.execute_batch("PRAGMA wal_checkpoint(PASSIVE)")?;
        }
    }
    let cpu = cpu_seconds()? - cpu0;
    let sent: i64 = intake.query_row(
        "SELECT COUNT(*) FROM outbox WHERE status = 'sent'",
        [],
        |r| r.get(0),
    )?;
    if sent != 2 * n {
        bail!("{sent} rows sent, {} expected", 2 * n);
    }
    Ok(cpu / n as f64)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [statements, migrations, db, n] = args.as_slice() else {
        bail!("usage: teleavis-sqlite-floor STATEMENTS.json MIGRATIONS_DIR DB_PATH REQUESTS");
    };
    let log: Vec<String> = serde_json::from_str(&std::fs::read_to_string(statements)?)?;
    let sql = Sql::resolve(&log)?;
    let n: i64 = n.parse().context("REQUESTS")?;
    let run_sizes = Sizes {
        request: 190 * 1024,
        ack: 3 * 1024,
        forward: 140 * 1024,
    };
    let empty = Sizes {
        request: 0,
        ack: 0,
        forward: 0,
    };
    for (what, sizes) in [
        ("the run's mail sizes", &run_sizes),
        ("empty messages", &empty),
    ] {
        let cpu = replay(&sql, Path::new(migrations), db, n, sizes)?;
        println!(
            "sqlite floor, {what}: {:.2} ms CPU per request ({n} requests)",
            cpu * 1e3
        );
    }
    Ok(())
}
