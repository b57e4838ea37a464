//! Fuzz target: the whole intake on one message, as the daemon runs it after an IMAP fetch
//! (store raw, dedupe, size, headers, loops, S/MIME unwrap and authentication, the workflow,
//! the outbox rows, the audit, one transaction), on SQLite in memory (a file in /dev/shm: an
//! `sqlite::memory:` store has a single connection, and the intake reads through the pool
//! while its transaction is open). The gateway is Bob of the
//! Thunderbird corpus (tests/data/thunderbird-smime), so the corpus's messages signed by Alice
//! and encrypted to Bob reach the workflow. Nothing may panic; an `Err` is only allowed from
//! the database, and none is expected from an in-memory one.
#![no_main]

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use teleavis::intake::{Fetched, Intake};
use teleavis::smime::SmimeEngine;
use teleavis::store::Store;

struct World {
    rt: tokio::runtime::Runtime,
    store: Store,
    settings: Arc<teleavis::config::Settings>,
    smime: Arc<SmimeEngine>,
    /// Kept alive: the configuration's files live there.
    _dir: tempfile::TempDir,
}

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/thunderbird-smime"
);

/// The configuration of config/dev.toml.in with Bob's identity and the corpus's CA.
fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let secret = |name: &str, bytes: &[u8]| {
            let p = d.join(name);
            std::fs::write(&p, bytes).expect("write");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            p
        };
        secret("imap.password", b"secret\n");
        secret("smtp.password", b"secret\n");
        let p12 = secret(
            "bob.p12",
            &std::fs::read(format!("{CORPUS}/Bob.p12")).expect("p12"),
        );
        let p12_pw = secret("bob.pw", b"nss\n");
        std::fs::create_dir(d.join("recipients")).expect("mkdir");
        let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/dev.toml.in");
        let mut text = std::fs::read_to_string(template).expect("config/dev.toml.in");
        for (k, v) in [
            ("@DATABASE_URL@", "sqlite::memory:".to_string()),
            ("@DIR@", d.display().to_string()),
            ("@IMAPS_PORT@", "993".into()),
            ("@SUBMISSION_PORT@", "587".into()),
            ("@CIPHER@", "aes-256-gcm".into()),
        ] {
            text = text.replace(k, &v);
        }
        let smime = format!(
            "[smime]\npkcs12 = \"{}\"\npkcs12_password_file = \"{}\"\n\
             trust_anchors = \"{CORPUS}/TestCA.pem\"\nrecipients_dir = \"{}\"\n\
             require_encryption = false\nencrypt_outgoing = \"when-possible\"\n",
            p12.display(),
            p12_pw.display(),
            d.join("recipients").display()
        );
        // Replace the [smime] section (up to the next one) and the TLS files of the test PKI.
        let start = text.find("[smime]").expect("[smime]");
        let end = start + text[start..].find("\n[outbox]").expect("[outbox]");
        text.replace_range(start..end, &smime);
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("ca_file"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace("teleexpertise@hopital.test", "bob@example.com")
            .replace("level = \"teleavis=debug,info\"", "level = \"off\"");
        let cfg = d.join("fuzz.toml");
        std::fs::write(&cfg, text).expect("write config");
        let settings = teleavis::config::load_and_validate(&cfg).expect("fuzz configuration");
        let smime = SmimeEngine::load(&settings.smime).expect("Bob's identity");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let shm = tempfile::Builder::new()
            .prefix("teleavis-fuzz-")
            .tempdir_in("/dev/shm")
            .expect("/dev/shm");
        let url = format!("sqlite://{}/fuzz.db", shm.keep().display());
        let store = rt.block_on(async {
            let store = Store::connect(&url, 2).await.expect("database");
            store.migrate().await.expect("migrations");
            store
        });
        World {
            rt,
            store,
            settings: Arc::new(settings),
            smime: Arc::new(smime),
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        // One database for the run, as the daemon has (a message seen again is a duplicate).
        let intake = Intake::new(w.settings.clone(), w.store.clone(), w.smime.clone());
        let fetched = Fetched {
            mailbox: "INBOX".into(),
            uidvalidity: 1,
            uid: 1,
            raw: data.to_vec(),
        };
        if let Err(e) = intake.handle(fetched).await {
            panic!("the intake failed on a message (not the database's fault?): {e:#}");
        }
    });
});
