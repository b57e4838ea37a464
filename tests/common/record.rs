//! What the patient's record software checks in a compte-rendu mail, done by the tools it would
//! trust: the ANS's CDA/XDM validator kit (`../shared/validators/cda/`) and poppler-utils.

#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::process::Command;

const KIT: &str = "../shared/validators/cda";

/// Python that reads a message from stdin and leaves in `msg` its innermost entity, decrypted
/// with `cert`/`key` (argv 1 and 2) and unwrapped from its signatures by `openssl cms`.
pub const UNWRAP_PY: &str = r#"
import sys, os, subprocess, email, email.policy, json
cert, key = sys.argv[1:3]
data = sys.stdin.buffer.read()
def cms(args, data):
    return subprocess.run(["openssl", "cms"] + args, input=data, capture_output=True, check=True).stdout
for _ in range(6):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    ct = msg.get_content_type()
    st = (msg.get_param("smime-type") or "").lower()
    if ct in ("application/pkcs7-mime", "application/x-pkcs7-mime") and "signed" not in st:
        data = cms(["-decrypt", "-binary", "-inform", "SMIME", "-recip", cert, "-inkey", key], data)
    elif "signed" in st:
        data = cms(["-verify", "-noverify", "-nosigs", "-binary", "-inform", "SMIME"], data)
    elif ct == "multipart/signed":
        msg = msg.get_payload(0)
        break
    else:
        break
"#;

/// Runs `validate-xdm.sh` on the archive and asserts it passes with no error and no warning.
/// Skips with a loud notice only when Java cannot be installed.
pub fn assert_xdm_valid(zip: &[u8], what: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("IHE_XDM.ZIP");
    std::fs::write(&path, zip).expect("write archive");
    let out = Command::new("bash")
        .arg(Path::new(KIT).join("validate-xdm.sh"))
        .arg(&path)
        .output()
        .expect("run validate-xdm.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.code() == Some(2) && Command::new("java").arg("-version").output().is_err() {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! NOTICE: Java could not be installed: the ANS XDM validation of\n\
             !! {what} is SKIPPED. Output:\n{text}\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return;
    }
    assert!(
        out.status.success(),
        "{what}: validate-xdm.sh failed:\n{text}"
    );
    assert!(
        text.contains("cda: 0 errors, 0 warnings") && text.contains("xdm: 0 errors, 0 warnings"),
        "{what}:\n{text}"
    );
}

/// Asserts the PDF is PDF/A-2 by its XMP (`pdfinfo -meta`), with every font embedded
/// (`pdffonts`) and a title a viewer shows right (`pdfinfo`).
pub fn assert_pdf_a(pdf: &[u8], title: &str, what: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cr.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let run = |tool: &str, args: &[&str]| {
        let out = Command::new(tool)
            .args(args)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e} (poppler-utils)"));
        assert!(out.status.success(), "{tool} failed on {what}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let meta = run("pdfinfo", &["-meta"]);
    assert!(
        meta.contains("<pdfaid:part>2</pdfaid:part>"),
        "{what}: not PDF/A-2:\n{meta}"
    );
    let info = run("pdfinfo", &["-enc", "UTF-8"]);
    assert!(
        info.lines()
            .any(|l| l.starts_with("Title:") && l.trim_end().ends_with(title)),
        "{what}: title:\n{info}"
    );
    let fonts = run("pdffonts", &[]);
    for row in fonts.lines().skip(2).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let n = cols.len();
        assert_eq!(
            cols.get(n.saturating_sub(5)),
            Some(&"yes"),
            "{what}: font not embedded:\n{fonts}"
        );
    }
}
