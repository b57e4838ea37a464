//! The S/MIME floor of `scripts/load.py`: the cost of the S/MIME operations one request causes
//! (decrypt and verify it; sign and encrypt its acknowledgement to the GP and its forward to the
//! group), with the project's own `smime` module, on the very messages of the run.
//!
//! `smime_floor CONFIG GROUP_ADDRESS FILE...` prints one JSON line:
//! `{"requests": n, "cpu_s": …, "wall_s": …}` (CPU of this process, from `/proc/self/stat`).

use std::time::Instant;

use anyhow::{Context, bail};
use chrono::Utc;
use openssl::x509::X509;
use teleavis::address::EmailAddress;
use teleavis::smime::SmimeEngine;

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based); clock ticks of 1/100 s.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, group, files @ ..] = args.as_slice() else {
        bail!("usage: smime_floor CONFIG GROUP_ADDRESS FILE...");
    };
    let settings = teleavis::config::load_and_validate(std::path::Path::new(config))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = SmimeEngine::load(&settings.smime)?;
    let group = EmailAddress::parse(group).map_err(|e| anyhow::anyhow!("{e}"))?;
    let group_cert = engine
        .recipient_from_dir(&group)
        .context("no certificate for the group in recipients_dir")?;
    let requests: Vec<Vec<u8>> = files.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let ack_text = "Bonjour,\r\n\r\nVotre demande a bien été reçue.\r\n".repeat(20);
    let (cpu0, wall0) = (cpu_seconds()?, Instant::now());
    for raw in &requests {
        let auth = engine
            .authenticate(raw, Utc::now())
            .map_err(|r| anyhow::anyhow!("request refused: {r:?}"))?;
        let gp = X509::from_der(&auth.signer.cert_der)?;
        let head = "From: <teleexpertise@hopital.test>\r\nSubject: x\r\nMIME-Version: 1.0\r\n";
        let ack = format!(
            "{head}To: <{}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{ack_text}",
            auth.signer.email
        );
        engine.protect(ack.as_bytes(), &[gp], true)?;
        let mut forward = format!("{head}To: <{group}>\r\n").into_bytes();
        forward.extend_from_slice(&auth.content);
        engine.protect(forward.as_slice(), std::slice::from_ref(&group_cert), true)?;
    }
    let (cpu, wall) = (cpu_seconds()? - cpu0, wall0.elapsed().as_secs_f64());
    println!(
        "{{\"requests\": {}, \"cpu_s\": {cpu:.3}, \"wall_s\": {wall:.3}}}",
        requests.len()
    );
    Ok(())
}
