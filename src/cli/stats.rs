//! `teleavis stats`: volumes, distinct requérants and response times per month, category,
//! department or specialty, in table, CSV or JSON. The requérant's department and specialty
//! come from the national directory, else from the form's `departement`/`code_postal` and
//! `specialite` fields, else `inconnu`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::threads::parse_day;
use super::{Format, UsageError, csv_field, open_store, print_table};
use crate::config::Settings;
use crate::form::RequestForm;
use crate::store::DirectoryEntry;

/// The fields of one group, in the contract's order (DESIGN.md, Statistics).
pub const FIELDS: [&str; 8] = [
    "requests",
    "distinct_requesters",
    "answered",
    "median_response_minutes",
    "p90_response_minutes",
    "mean_response_minutes",
    "within_deadline_pct",
    "closed",
];

/// One group's figures.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GroupStats {
    pub requests: usize,
    pub distinct_requesters: usize,
    pub answered: usize,
    pub median_response_minutes: Option<i64>,
    pub p90_response_minutes: Option<i64>,
    pub mean_response_minutes: Option<i64>,
    /// Share of the requests answered within their own deadline (urgent or standard), in percent.
    pub within_deadline_pct: Option<f64>,
    pub closed: usize,
}

impl GroupStats {
    pub(super) fn cells(&self) -> Vec<String> {
        let opt = |v: Option<i64>| v.map(|m| m.to_string()).unwrap_or_default();
        vec![
            self.requests.to_string(),
            self.distinct_requesters.to_string(),
            self.answered.to_string(),
            opt(self.median_response_minutes),
            opt(self.p90_response_minutes),
            opt(self.mean_response_minutes),
            self.within_deadline_pct
                .map(|p| format!("{p:.1}"))
                .unwrap_or_default(),
            self.closed.to_string(),
        ]
    }
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

fn form_field(form: Option<&RequestForm>, keys: &[&str]) -> Option<String> {
    let f = form?;
    let v = f.extra.iter().find(|v| keys.contains(&v.key.as_str()))?;
    let value = v.value.trim();
    let value = if v.key == "code_postal" {
        value.chars().take(2).collect()
    } else {
        value.to_owned()
    };
    (!value.is_empty()).then_some(value)
}

pub async fn stats(
    settings: &Settings,
    from: Option<String>,
    to: Option<String>,
    by: &str,
    format: Format,
    output: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    if output.is_some() && format != Format::Html {
        return Err(UsageError("--output is for --format html".into()).into());
    }
    if !["month", "category", "department", "specialty"].contains(&by) {
        return Err(UsageError(format!(
            "--by {by:?}: expected month, category, department or specialty"
        ))
        .into());
    }
    let (from_day, to_day) = (from.clone(), to.clone());
    let from = match from {
        Some(s) => parse_day(&s, "--from")?,
        None => DateTime::<Utc>::UNIX_EPOCH,
    };
    // --to is inclusive: the whole day.
    let to = match to {
        Some(s) => parse_day(&s, "--to")? + chrono::Duration::days(1),
        None => Utc::now() + chrono::Duration::days(1),
    };
    let store = open_store(settings).await?;
    let rows = store.thread_stats_rows(from, to).await?;
    let forms: HashMap<String, Option<RequestForm>> = store
        .list_threads(None, None)
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), serde_json::from_str(&t.form_json).ok()))
        .collect();
    let requesters: Vec<String> = rows
        .iter()
        .map(|r| r.requester.to_lowercase())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let directory: HashMap<String, DirectoryEntry> = store
        .directory_entries_for(&requesters)
        .await?
        .into_iter()
        .map(|e| (e.address.clone(), e))
        .collect();
    let tz: chrono_tz::Tz = settings
        .gateway
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Europe::Paris);

    let data = Data {
        settings,
        rows: &rows,
        forms: &forms,
        directory: &directory,
        tz,
    };
    let table = data.groups(by);
    let mut header = vec![by];
    header.extend(FIELDS);
    match format {
        Format::Table | Format::Text => {
            let cells: Vec<Vec<String>> = table
                .iter()
                .map(|(k, g)| std::iter::once(k.clone()).chain(g.cells()).collect())
                .collect();
            print_table(&header, &cells);
            let all: BTreeSet<String> = rows.iter().map(|r| r.requester.to_lowercase()).collect();
            println!(
                "\n{} requests, {} distinct requérants",
                rows.len(),
                all.len()
            );
        }
        Format::Csv => {
            println!("{}", header.join(","));
            for (k, g) in &table {
                let mut cells = vec![csv_field(k)];
                cells.extend(g.cells());
                println!("{}", cells.join(","));
            }
        }
        Format::Json => {
            let v: Vec<_> = table
                .iter()
                .map(|(k, g)| {
                    json!({
                        "group": k, by: k,
                        "requests": g.requests, "distinct_requesters": g.distinct_requesters,
                        "answered": g.answered,
                        "median_response_minutes": g.median_response_minutes,
                        "p90_response_minutes": g.p90_response_minutes,
                        "mean_response_minutes": g.mean_response_minutes,
                        "within_deadline_pct": g.within_deadline_pct,
                        "closed": g.closed,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Html => {
            let period = match (from_day, to_day) {
                (None, None) => String::new(),
                (f, t) => format!(
                    " — du {} au {}",
                    f.as_deref().unwrap_or("début"),
                    t.as_deref().unwrap_or("ce jour")
                ),
            };
            let network = &settings.gateway.network;
            let title = format!("Téléexpertise {network} — statistiques{period}");
            // The seed's charts: every grouping (the `--by` one first), and the response times.
            let mut sections = vec![(by, table.clone())];
            for other in ["month", "category", "department", "specialty"] {
                if other != by {
                    sections.push((other, data.groups(other)));
                }
            }
            let minutes: Vec<i64> = rows
                .iter()
                .filter_map(|r| r.first_answer_at.map(|a| (a - r.created_at).num_minutes()))
                .collect();
            let page = super::stats_html::render(&title, &sections, &minutes);
            match output {
                Some(path) => std::fs::write(&path, page)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
                None => print!("{page}"),
            }
        }
        other @ (Format::Pdf | Format::Cda | Format::Xdm) => {
            return Err(UsageError(format!("stats has no {other:?} format")).into());
        }
    }
    Ok(())
}

/// What `stats` reads, once: the rows of the period, the forms, the requérants' directory
/// entries.
struct Data<'a> {
    settings: &'a Settings,
    rows: &'a [crate::store::ThreadStatsRow],
    forms: &'a HashMap<String, Option<RequestForm>>,
    directory: &'a HashMap<String, DirectoryEntry>,
    tz: chrono_tz::Tz,
}

impl Data<'_> {
    /// The figures per group for `--by by`, ordered by group.
    fn groups(&self, by: &str) -> Vec<(String, GroupStats)> {
        let Data {
            settings,
            rows,
            forms,
            directory,
            tz,
        } = self;
        let rows = *rows;
        #[derive(Default)]
        struct Acc {
            requests: usize,
            requesters: BTreeSet<String>,
            minutes: Vec<i64>,
            within: usize,
            closed: usize,
        }
        let mut groups: BTreeMap<String, Acc> = BTreeMap::new();
        for r in rows {
            let form = forms.get(&r.thread_id).and_then(|f| f.as_ref());
            let entry = directory.get(&r.requester.to_lowercase());
            let key = match by {
                "month" => Some(r.created_at.with_timezone(tz).format("%Y-%m").to_string()),
                "category" => Some(r.category.clone()),
                "department" => entry
                    .and_then(|e| e.department.clone())
                    .or_else(|| form_field(form, &["departement", "code_postal"])),
                _ => entry
                    .and_then(|e| {
                        e.specialty
                            .as_deref()
                            .map(|s| crate::directory::specialty_label(s).to_owned())
                            .or_else(|| e.profession.clone())
                    })
                    .or_else(|| form_field(form, &["specialite"])),
            }
            .unwrap_or_else(|| "inconnu".into());
            let g = groups.entry(key).or_default();
            g.requests += 1;
            g.requesters.insert(r.requester.to_lowercase());
            if let Some(a) = r.first_answer_at {
                let minutes = (a - r.created_at).num_minutes();
                g.minutes.push(minutes);
                // The thread's own deadline (the urgent line's is shorter); threads opened
                // before the desk kept deadlines fall back on their category's.
                let within = match r.deadline_at {
                    Some(d) => a <= d,
                    None => {
                        let deadline = settings
                            .category(&r.category)
                            .map(|c| (c.deadline_hours * 60.0).round() as i64)
                            .unwrap_or(48 * 60);
                        minutes <= deadline
                    }
                };
                if within {
                    g.within += 1;
                }
            }
            if r.status == "terminee" {
                g.closed += 1;
            }
        }
        groups
            .into_iter()
            .map(|(k, mut g)| {
                g.minutes.sort_unstable();
                let answered = g.minutes.len();
                let stats = GroupStats {
                    requests: g.requests,
                    distinct_requesters: g.requesters.len(),
                    answered,
                    median_response_minutes: median(&g.minutes),
                    p90_response_minutes: percentile(&g.minutes, 90),
                    mean_response_minutes: (answered > 0)
                        .then(|| g.minutes.iter().sum::<i64>() / answered as i64),
                    within_deadline_pct: (g.requests > 0)
                        .then(|| 100.0 * g.within as f64 / g.requests as f64),
                    closed: g.closed,
                };
                (k, stats)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_deadline_uses_the_threads_own_deadline() {
        let settings = crate::config::dev_settings();
        let at = |m: i64| DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(m);
        let row = |id: &str, answer: i64, deadline: Option<i64>| crate::store::ThreadStatsRow {
            thread_id: id.into(),
            category: "infectio".into(),
            requester: "dr.martin@cabinet.test".into(),
            requester_rpps: None,
            status: "en_cours".into(),
            created_at: at(0),
            first_answer_at: Some(at(answer)),
            deadline_at: deadline.map(at),
            closed_at: None,
        };
        // Answered after an hour: late on the urgent line (30 min), in time on the standard
        // one (48 h, its own or, for a thread without one, its category's).
        let rows = [
            row("TE-2026-000001", 60, Some(30)),
            row("TE-2026-000002", 60, Some(48 * 60)),
            row("TE-2026-000003", 60, None),
            row("TE-2026-000004", 20, Some(30)),
        ];
        let data = Data {
            settings: &settings,
            rows: &rows,
            forms: &HashMap::new(),
            directory: &HashMap::new(),
            tz: chrono_tz::Europe::Paris,
        };
        let groups = data.groups("category");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].1.within_deadline_pct, Some(75.0));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&v, 50), Some(5));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile(&[], 90), None);
        assert_eq!(median(&[1, 2, 3, 10]), Some(2));
    }
}
