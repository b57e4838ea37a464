//! Reading the national extraction: `.txt` or the `.zip` it is delivered in, streamed record by
//! record, columns found by their header name (the publisher renames and adds columns).
//!
//! The file is `|`-separated with no quoting (a `"` is an ordinary character), one header row,
//! and lines that may end with a trailing `|`. Every record is checked whole: its UTF-8 and its
//! number of fields; the first fault stops the reading with the file and line named.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::store::DirectoryEntry;

/// A directory file that cannot be read: which file, which line, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {problem}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
pub struct ParseError {
    pub file: String,
    pub line: Option<u64>,
    pub problem: String,
}

/// The columns teleavis reads: (header name, required).
const ADDRESS: &str = "Adresse BAL";
const KIND: &str = "Type de BAL";
const RPPS: &str = "Identifiant PP";
const NATIONAL_PP: &str = "Identification nationale PP";
const CIVILITY: &str = "Civilité d'exercice";
const LAST_NAME: &str = "Nom d'exercice";
const FIRST_NAME: &str = "Prénom d'exercice";
const PROFESSION_CODE: &str = "Code Profession";
const PROFESSION: &str = "Libellé Profession";
const SPECIALTY_CODE: &str = "Code savoir-faire";
const SPECIALTY: &str = "Libellé savoir-faire";
const ORGANIZATION: &str = "Raison Sociale structure BAL";
const POSTAL_CODE: &str = "Code postal";
const DEPARTMENT: &str = "Département";

const REQUIRED: [&str; 9] = [
    ADDRESS,
    KIND,
    RPPS,
    LAST_NAME,
    FIRST_NAME,
    PROFESSION,
    SPECIALTY,
    POSTAL_CODE,
    DEPARTMENT,
];
const OPTIONAL: [&str; 5] = [
    NATIONAL_PP,
    CIVILITY,
    PROFESSION_CODE,
    SPECIALTY_CODE,
    ORGANIZATION,
];

/// Where each column read sits in a record.
#[derive(Debug, Clone)]
struct Columns {
    /// Named fields of the header (a trailing empty one, from a trailing `|`, not counted).
    width: usize,
    index: std::collections::HashMap<&'static str, usize>,
}

impl Columns {
    fn from_header(fields: &[&str]) -> Result<Columns, String> {
        let mut names: Vec<String> = fields
            .iter()
            .map(|f| f.trim().trim_start_matches('\u{feff}').to_lowercase())
            .collect();
        if names.last().is_some_and(|n| n.is_empty()) {
            names.pop();
        }
        let mut index = std::collections::HashMap::new();
        let mut missing = Vec::new();
        for (name, required) in REQUIRED
            .iter()
            .map(|n| (*n, true))
            .chain(OPTIONAL.iter().map(|n| (*n, false)))
        {
            match names.iter().position(|h| *h == name.to_lowercase()) {
                Some(i) => {
                    index.insert(name, i);
                }
                None if required => missing.push(name),
                None => {}
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "wrong header: no column {} (is this an Extraction_Correspondance_MSSante file?)",
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(Columns {
            width: names.len(),
            index,
        })
    }
}

/// What reading a file found, once it is read to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Data lines (the header not counted).
    pub lines: u64,
}

/// Reads `path` (`.zip`: its `.txt` member) to the end, handing entries to `sink` in batches
/// of at most `batch` entries, none holding an address twice (lines of one address in one
/// batch are merged: first value of each column, empty ones filled by later lines). `sink`
/// returns false to stop early (the consumer failed). Blocking: run it on its own thread.
pub fn read_batches(
    path: &Path,
    batch: usize,
    sink: &mut dyn FnMut(Vec<DirectoryEntry>) -> bool,
) -> Result<ReadCounts, ParseError> {
    let name = path.display().to_string();
    let fail = |problem: String| ParseError {
        file: name.clone(),
        line: None,
        problem,
    };
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let is_zip = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if !is_zip {
        return read_from(name, file, batch, sink);
    }
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        fail(format!(
            "not a readable ZIP archive (truncated or damaged?): {e}"
        ))
    })?;
    let (index, member) = (0..archive.len())
        .filter_map(|i| {
            archive
                .name_for_index(i)
                .and_then(|n| n.ok())
                .map(|n| (i, n.into_owned()))
        })
        .find(|(_, n)| n.to_lowercase().ends_with(".txt"))
        .ok_or_else(|| fail("the ZIP archive holds no .txt file".into()))?;
    let reader = archive
        .by_index(index)
        .map_err(|e| fail(format!("cannot read {member} in the archive: {e}")))?;
    read_from(format!("{name}!{member}"), reader, batch, sink)
}

fn read_from<R: Read>(
    name: String,
    input: R,
    batch: usize,
    sink: &mut dyn FnMut(Vec<DirectoryEntry>) -> bool,
) -> Result<ReadCounts, ParseError> {
    let fail = |line: u64, problem: String| ParseError {
        file: name.clone(),
        line: Some(line),
        problem,
    };
    let mut records = csv::ReaderBuilder::new()
        .delimiter(b'|')
        .quoting(false)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(input);
    let mut record = csv::ByteRecord::new();
    let more = records
        .read_byte_record(&mut record)
        .map_err(|e| fail(1, read_problem(&e)))?;
    if !more {
        return Err(fail(1, "empty file: no header".into()));
    }
    if std::str::from_utf8(record.as_slice()).is_err() {
        return Err(fail(1, "not valid UTF-8".into()));
    }
    let fields: Vec<&str> = record
        .iter()
        .map(|f| std::str::from_utf8(f).unwrap_or(""))
        .collect();
    let columns = Columns::from_header(&fields).map_err(|p| fail(1, p))?;
    let mut counts = ReadCounts::default();
    let mut pending: Vec<DirectoryEntry> = Vec::with_capacity(batch);
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut line = 1;
    loop {
        let more = match records.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                let at = e.position().map(|p| p.line()).unwrap_or(line + 1);
                return Err(fail(at, read_problem(&e)));
            }
        };
        if !more {
            break;
        }
        line = record.position().map(|p| p.line()).unwrap_or(line + 1);
        let entry = columns.entry(&record).map_err(|p| fail(line, p))?;
        counts.lines += 1;
        match seen.get(&entry.address) {
            Some(&i) => merge(&mut pending[i], entry),
            None => {
                seen.insert(entry.address.clone(), pending.len());
                pending.push(entry);
            }
        }
        if pending.len() >= batch {
            seen.clear();
            if !sink(std::mem::replace(&mut pending, Vec::with_capacity(batch))) {
                return Ok(counts);
            }
        }
    }
    if !pending.is_empty() {
        sink(pending);
    }
    Ok(counts)
}

/// Fills the empty columns of `into` from `other` (the same mailbox on another line).
fn merge(into: &mut DirectoryEntry, other: DirectoryEntry) {
    let fill = |a: &mut Option<String>, b: Option<String>| {
        if a.is_none() {
            *a = b;
        }
    };
    if into.kind.is_empty() {
        into.kind = other.kind;
    }
    fill(&mut into.rpps, other.rpps);
    fill(&mut into.civility, other.civility);
    fill(&mut into.last_name, other.last_name);
    fill(&mut into.first_name, other.first_name);
    fill(&mut into.profession_code, other.profession_code);
    fill(&mut into.profession, other.profession);
    fill(&mut into.specialty_code, other.specialty_code);
    fill(&mut into.specialty, other.specialty);
    fill(&mut into.organization, other.organization);
    fill(&mut into.postal_code, other.postal_code);
    fill(&mut into.department, other.department);
}

impl Columns {
    fn entry(&self, record: &csv::ByteRecord) -> Result<DirectoryEntry, String> {
        // Checked whole, so that a bad byte anywhere in the line is found, not only in the
        // columns read.
        if std::str::from_utf8(record.as_slice()).is_err() {
            return Err("not valid UTF-8".into());
        }
        let w = self.width;
        let n = record.len();
        let trailing = n == w + 1 && record.get(w).is_some_and(<[u8]>::is_empty);
        if n != w && !trailing {
            return Err(format!(
                "{n} fields where the header has {w} (a `|` missing or too many?)"
            ));
        }
        let get = |name: &str| -> Option<String> {
            let i = *self.index.get(name)?;
            let v = std::str::from_utf8(record.get(i)?).ok()?.trim();
            (!v.is_empty()).then(|| v.to_owned())
        };
        let address = get(ADDRESS)
            .ok_or_else(|| format!("empty `{ADDRESS}`"))?
            .to_lowercase();
        if !address.contains('@') {
            return Err(format!("`{ADDRESS}` is not an address: `{address}`"));
        }
        let rpps = get(RPPS).or_else(|| {
            // `8` + RPPS when only the national identifier is filled.
            get(NATIONAL_PP).and_then(|n| n.strip_prefix('8').map(str::to_owned))
        });
        Ok(DirectoryEntry {
            address,
            kind: get(KIND).unwrap_or_default(),
            rpps,
            civility: get(CIVILITY),
            last_name: get(LAST_NAME),
            first_name: get(FIRST_NAME),
            profession_code: get(PROFESSION_CODE),
            profession: get(PROFESSION),
            specialty_code: get(SPECIALTY_CODE),
            specialty: get(SPECIALTY),
            organization: get(ORGANIZATION),
            postal_code: get(POSTAL_CODE),
            department: get(DEPARTMENT),
        })
    }
}

fn read_problem(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => format!("cannot read (truncated or damaged?): {io}"),
        _ => format!("cannot read: {e}"),
    }
}
