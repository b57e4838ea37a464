//! The directory against the sample in the real file's layout, bad files, and imports on both
//! backends.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;
use crate::store::testutil::both;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/directory/Extraction_Correspondance_MSSante_sample.txt")
}

fn read_all(path: &Path) -> Result<(Vec<DirectoryEntry>, u64), ParseError> {
    let mut all = Vec::new();
    let counts = parse::read_batches(path, 3, &mut |b| {
        all.extend(b);
        true
    })?;
    Ok((all, counts.lines))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn zip_of(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut out);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file(name, opts).unwrap();
    z.write_all(bytes).unwrap();
    z.finish().unwrap();
    out.into_inner()
}

#[test]
fn the_sample_reads_with_its_columns() {
    let (entries, lines) = read_all(&sample()).unwrap();
    assert_eq!(lines, 12);
    let martin: Vec<_> = entries
        .iter()
        .filter(|e| e.address == "dr.martin@cabinet.test")
        .collect();
    // Batches of 3: the two lines of dr.martin fall in one batch and are merged there.
    assert_eq!(martin.len(), 1);
    let m = martin[0];
    assert_eq!(m.rpps.as_deref(), Some("10001234567"));
    assert_eq!(m.profession.as_deref(), Some("Médecin"));
    assert_eq!(m.specialty.as_deref(), Some("Médecine générale (SM)"));
    assert_eq!(m.department.as_deref(), Some("57"));
    assert_eq!(m.organization.as_deref(), Some("CABINET MEDICAL DU PARC"));
    assert_eq!(
        describe(m).as_deref(),
        Some("Spécialiste en Médecine générale")
    );
    assert_eq!(display_name(m).as_deref(), Some("Dr Olivier MARTIN"));
    let bua = entries
        .iter()
        .find(|e| e.address == "dr.bua@cabinet.test")
        .unwrap();
    assert_eq!(bua.first_name.as_deref(), Some("Jean-René"));
    let corsica = entries
        .iter()
        .find(|e| e.address == "dr.leroux@cabinet.test")
        .unwrap();
    assert_eq!(corsica.department.as_deref(), Some("2A"));
    let sf = entries
        .iter()
        .find(|e| e.address == "sf.petit@cabinet.test")
        .unwrap();
    assert_eq!(describe(sf).as_deref(), Some("Sage-Femme"));
    let org = entries
        .iter()
        .find(|e| e.address == "infectio@hopital.test")
        .unwrap();
    assert_eq!((org.kind.as_str(), org.rpps.as_deref()), ("ORG", None));
}

#[test]
fn columns_are_found_by_name_whatever_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "x.txt",
        "Département|Nouvelle colonne|Adresse BAL|Type de BAL|Identifiant PP|Nom d'exercice|\
         Prénom d'exercice|Libellé Profession|Libellé savoir-faire|Code postal\n\
         974|z|Dr.X@Y.test|PER|10000000001|X|Y|Médecin||97400\n"
            .as_bytes(),
    );
    let (e, _) = read_all(&p).unwrap();
    assert_eq!(e[0].address, "dr.x@y.test");
    assert_eq!(e[0].department.as_deref(), Some("974"));
    assert_eq!(e[0].rpps.as_deref(), Some("10000000001"));
}

#[test]
fn bad_files_are_named_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(sample()).unwrap();
    let text = String::from_utf8(good.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    let p = write(dir.path(), "header.txt", b"a|b|c\n1|2|3\n");
    let e = read_all(&p).unwrap_err();
    assert_eq!(e.line, Some(1));
    assert!(e.to_string().contains("wrong header"), "{e}");
    assert!(e.to_string().contains("header.txt"), "{e}");

    let mut bad = good.clone();
    let at = text.find("Jean-René").unwrap();
    bad[at + 7] = 0xff;
    let p = write(dir.path(), "utf8.txt", &bad);
    let e = read_all(&p).unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.to_string().contains("UTF-8"), "{e}");

    let mut short = lines.clone();
    let cut = short[4].replacen("|57|", "|57|Lorraine|", 1);
    short[4] = &cut;
    let p = write(dir.path(), "fields.txt", short.join("\n").as_bytes());
    let e = read_all(&p).unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(
        e.to_string().contains("fields.txt: line 5: 33 fields"),
        "{e}"
    );

    let z = zip_of("Extraction_Correspondance_MSSante_202608010000.txt", &good);
    let p = write(dir.path(), "ok.zip", &z);
    let (entries, n) = read_all(&p).unwrap();
    assert_eq!((entries.len(), n), (11, 12));
    let p = write(dir.path(), "cut.zip", &z[..z.len() / 2]);
    let e = read_all(&p).unwrap_err();
    assert!(e.to_string().contains("cut.zip: not a readable ZIP"), "{e}");
}

#[test]
fn professions_compare_loosely() {
    let list = crate::config::DirectorySettings::default().requester_professions;
    assert!(profession_in("Médecin", &list));
    assert!(profession_in("Sage-Femme", &["sages-femmes".to_string()]));
    assert!(profession_in("Infirmier", &list));
    assert!(profession_in("Masseur-Kinésithérapeute", &list));
    assert!(!profession_in("Pharmacien", &list));
    assert_eq!(rpps_query("810001234567").as_deref(), Some("10001234567"));
    assert_eq!(rpps_query("10001234567").as_deref(), Some("10001234567"));
    assert_eq!(rpps_query("dr.x@y"), None);
}

#[tokio::test]
async fn import_replaces_atomically_and_merges_addresses() {
    both("directory_import", |store| async move {
        let now = Utc::now();
        let s = import(&store, &sample(), now).await.unwrap();
        assert_eq!((s.lines, s.entries, s.merged()), (12, 11, 1));
        let m = store.directory_by_address("DR.MARTIN@cabinet.TEST").await.unwrap().unwrap();
        assert_eq!(m.department.as_deref(), Some("57"));
        let by_rpps = store.directory_by_rpps("10007654321").await.unwrap();
        assert_eq!(by_rpps[0].address, "dr.bua@cabinet.test");

        // A bad file changes nothing.
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(sample()).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[2] = "PER|dr.new@cabinet.test|8|1|81".into();
        let bad = write(dir.path(), "bad.txt", lines.join("\n").as_bytes());
        let e = import(&store, &bad, now).await.unwrap_err();
        assert!(e.to_string().contains("bad.txt: line 3"), "{e}");
        assert!(e.to_string().contains("unchanged"), "{e}");
        assert!(store.directory_by_address("dr.martin@cabinet.test").await.unwrap().is_some());

        // A good one replaces everything, duplicates across batches merged.
        let mut many = vec![lines[0].clone()];
        for i in 0..1200 {
            many.push(format!(
                "PER|p{}@x.test|8|1{i:010}|81{i:010}||||DR|N{i}|P|C|Civil|10|Médecin|||Oui|C||||1||R|R||57000 M|57000|57|France|",
                i % 1100
            ));
        }
        let big = write(dir.path(), "big.txt", many.join("\n").as_bytes());
        let s = import(&store, &big, now).await.unwrap();
        assert_eq!((s.lines, s.entries), (1200, 1100));
        assert!(store.directory_by_address("dr.martin@cabinet.test").await.unwrap().is_none());
        let p5 = store.directory_by_address("p5@x.test").await.unwrap().unwrap();
        assert_eq!(p5.rpps.as_deref(), Some("10000000005"));
        assert!(!changed_since_import(&store, &big).await.unwrap());
        assert!(changed_since_import(&store, &bad).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn a_message_reads_each_directory_entry_once() {
    both("directory_memo", |store| async move {
        import(&store, &sample(), Utc::now()).await.unwrap();
        let line = "Requérant : dr.martin@cabinet.test\n".to_string();
        let mut tx = store.begin().await.unwrap();
        let (first, second) = hooks::remembering(async {
            let first =
                hooks::amend_forward(&store, &mut tx, "dr.martin@cabinet.test", line.clone())
                    .await
                    .unwrap();
            sqlx::query("DELETE FROM directory_entries WHERE address = $1")
                .bind("dr.martin@cabinet.test")
                .execute(&mut *tx)
                .await
                .unwrap();
            // Another spelling of the same address: the same entry, not read again.
            let second =
                hooks::amend_forward(&store, &mut tx, " DR.Martin@cabinet.TEST", line.clone())
                    .await
                    .unwrap();
            (first, second)
        })
        .await;
        assert!(first.contains("département 57"), "{first}");
        assert_eq!(second, first);
        // Outside a message's scope every lookup reads the database.
        let third = hooks::amend_forward(&store, &mut tx, "dr.martin@cabinet.test", line.clone())
            .await
            .unwrap();
        assert_eq!(third, line);
        tx.rollback().await.unwrap();
    })
    .await;
}
