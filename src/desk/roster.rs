//! Reading a roster file: CSV `category,start,end,expert` (local date-times in
//! `gateway.timezone`) or iCalendar (one VEVENT per duty: DTSTART/DTEND, the expert as
//! ATTENDEE mailto: or an address in SUMMARY, the category in CATEGORIES). Every fault is named
//! with the file and line, and nothing is imported then.
//!
//! iCalendar is read by hand: only the handful of properties above matter, unfolded lines and
//! `TZID=`/`Z`/floating times, and a full RFC 5545 parser would not check what matters here
//! (a known category, an address, start before end).

use std::path::Path;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::Settings;
use crate::store::RosterSlot;

/// A roster file that cannot be imported: which file, which line, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: line {line}: {problem}; the roster is unchanged")]
pub struct RosterError {
    pub file: String,
    pub line: u64,
    pub problem: String,
}

/// Reads `path` (iCalendar when it starts with `BEGIN:VCALENDAR`, else CSV).
pub fn read(path: &Path, settings: &Settings) -> Result<Vec<RosterSlot>, RosterError> {
    let name = path.display().to_string();
    let fail = |line: u64, problem: String| RosterError {
        file: name.clone(),
        line,
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(0, format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| fail(1, "not valid UTF-8".into()))?;
    let tz: Tz = settings
        .gateway
        .timezone
        .parse()
        .unwrap_or(chrono_tz::Europe::Paris);
    let check = |line: u64, category: &str, start, end, expert: &str| {
        let cat = settings
            .category(category.trim())
            .ok_or_else(|| fail(line, format!("unknown category {:?}", category.trim())))?;
        let expert = expert.trim().trim_start_matches("mailto:").to_lowercase();
        crate::address::EmailAddress::parse(&expert)
            .map_err(|_| fail(line, format!("{expert:?} is not an address")))?;
        if start >= end {
            return Err(fail(line, "the end is not after the start".into()));
        }
        Ok(RosterSlot {
            category: cat.id.clone(),
            starts_at: start,
            ends_at: end,
            expert,
        })
    };
    if text.trim_start().starts_with("BEGIN:VCALENDAR") {
        ical(&text, tz, &fail, &check)
    } else {
        csv_slots(&text, tz, &fail, &check)
    }
}

/// An iCalendar property: name (uppercase), parameters, value.
type Property = (String, String, String);

type Fail<'a> = dyn Fn(u64, String) -> RosterError + 'a;
type Check<'a> =
    dyn Fn(u64, &str, DateTime<Utc>, DateTime<Utc>, &str) -> Result<RosterSlot, RosterError> + 'a;

/// `2026-12-01T08:00` (or with seconds, or a space) in `tz`.
pub fn local_time(text: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let t = text.trim();
    let naive = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

fn csv_slots(
    text: &str,
    tz: Tz,
    fail: &Fail,
    check: &Check,
) -> Result<Vec<RosterSlot>, RosterError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| fail(1, e.to_string()))?
        .clone();
    let col = |n: &str| header.iter().position(|h| h.eq_ignore_ascii_case(n));
    let (Some(c), Some(s), Some(e), Some(x)) =
        (col("category"), col("start"), col("end"), col("expert"))
    else {
        return Err(fail(
            1,
            "the header must be category,start,end,expert".into(),
        ));
    };
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            fail(line, e.to_string())
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let get = |i: usize| record.get(i).unwrap_or_default();
        let time = |i: usize, what: &str| {
            local_time(get(i), tz).ok_or_else(|| {
                fail(
                    line,
                    format!(
                        "{what} {:?} is not a local date-time like 2026-12-01T08:00",
                        get(i)
                    ),
                )
            })
        };
        out.push(check(
            line,
            get(c),
            time(s, "start")?,
            time(e, "end")?,
            get(x),
        )?);
    }
    Ok(out)
}

fn ical(text: &str, tz: Tz, fail: &Fail, check: &Check) -> Result<Vec<RosterSlot>, RosterError> {
    // Unfold (RFC 5545 §3.1): a line starting with a space or tab continues the previous one.
    let mut lines: Vec<(u64, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim_end_matches('\r');
        match (raw.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some((_, last))) => last.push_str(rest),
            _ => lines.push((i as u64 + 1, raw.to_string())),
        }
    }
    let mut out = Vec::new();
    let mut event: Option<(u64, Vec<Property>)> = None;
    for (n, line) in lines {
        if line == "BEGIN:VEVENT" {
            event = Some((n, Vec::new()));
            continue;
        }
        if line == "END:VEVENT" {
            let Some((start_line, props)) = event.take() else {
                return Err(fail(n, "END:VEVENT without BEGIN:VEVENT".into()));
            };
            let prop = |name: &str| props.iter().find(|(k, _, _)| k == name);
            let time = |name: &str| -> Result<DateTime<Utc>, RosterError> {
                let (_, params, v) =
                    prop(name).ok_or_else(|| fail(start_line, format!("VEVENT without {name}")))?;
                ical_time(params, v, tz)
                    .ok_or_else(|| fail(start_line, format!("{name} {v:?} is not a date-time")))
            };
            let category = prop("CATEGORIES")
                .map(|(_, _, v)| v.split(',').next().unwrap_or("").to_string())
                .ok_or_else(|| fail(start_line, "VEVENT without CATEGORIES".into()))?;
            let expert = prop("ATTENDEE")
                .map(|(_, _, v)| v.clone())
                .or_else(|| {
                    prop("SUMMARY").and_then(|(_, _, v)| {
                        v.split_whitespace()
                            .find(|w| w.contains('@'))
                            .map(str::to_owned)
                    })
                })
                .ok_or_else(|| {
                    fail(
                        start_line,
                        "VEVENT without ATTENDEE nor an address in SUMMARY".into(),
                    )
                })?;
            out.push(check(
                start_line,
                &category,
                time("DTSTART")?,
                time("DTEND")?,
                &expert,
            )?);
            continue;
        }
        if let Some((_, props)) = event.as_mut()
            && let Some((head, value)) = line.split_once(':')
        {
            let (name, params) = head.split_once(';').unwrap_or((head, ""));
            props.push((
                name.to_ascii_uppercase(),
                params.to_string(),
                value.to_string(),
            ));
        }
    }
    if let Some((n, _)) = event {
        return Err(fail(
            n,
            "VEVENT without END:VEVENT (truncated file?)".into(),
        ));
    }
    Ok(out)
}

/// `20261201T080000Z` (UTC), `TZID=Europe/Paris:20261201T080000`, or floating (`tz`).
fn ical_time(params: &str, value: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let v = value.trim();
    if let Some(utc) = v.strip_suffix('Z') {
        let n = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").ok()?;
        return Some(Utc.from_utc_datetime(&n));
    }
    let zone: Tz = params
        .split(';')
        .find_map(|p| p.strip_prefix("TZID="))
        .and_then(|z| z.trim_matches('"').parse().ok())
        .unwrap_or(tz);
    let n = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S").ok()?;
    zone.from_local_datetime(&n)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> (Settings, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../config/dev.toml.in")
            .replace("@DATABASE_URL@", "sqlite::memory:")
            .replace("@DIR@", "/nonexistent")
            .replace("@PKI@", "/nonexistent")
            .replace("@IMAPS_PORT@", "993")
            .replace("@SUBMISSION_PORT@", "587")
            .replace("@CIPHER@", "aes-256-gcm");
        let p = dir.path().join("t.toml");
        std::fs::write(&p, text).unwrap();
        (Settings::load(&p).unwrap(), dir)
    }

    fn read_text(name: &str, text: &str) -> Result<Vec<RosterSlot>, RosterError> {
        let (s, dir) = settings();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        read(&p, &s)
    }

    #[test]
    fn csv_in_local_time() {
        let slots = read_text(
            "r.csv",
            "category,start,end,expert\ninfectio,2026-12-01T08:00,2026-12-01T13:00,Dr.Ruch@hopital.test\n\
             pneumo,2026-07-01T08:00,2026-07-01T13:00,dr.legrand@hopital.test\n",
        )
        .unwrap();
        assert_eq!(slots.len(), 2);
        // Paris is UTC+1 in December, UTC+2 in July.
        assert_eq!(
            crate::store::ts(slots[0].starts_at),
            "2026-12-01T07:00:00.000Z"
        );
        assert_eq!(
            crate::store::ts(slots[1].starts_at),
            "2026-07-01T06:00:00.000Z"
        );
        assert_eq!(slots[0].expert, "dr.ruch@hopital.test");
    }

    #[test]
    fn bad_csv_lines_are_named() {
        let head = "category,start,end,expert\ninfectio,2026-12-01T08:00,2026-12-01T13:00,dr.ruch@hopital.test\n";
        for (line, want) in [
            (
                "cardio,2026-12-01T08:00,2026-12-01T13:00,a@b.test",
                "line 3: unknown category \"cardio\"",
            ),
            (
                "infectio,2026-12-01,2026-12-01T13:00,a@b.test",
                "line 3: start \"2026-12-01\"",
            ),
            (
                "infectio,2026-12-01T13:00,2026-12-01T08:00,a@b.test",
                "line 3: the end is not after",
            ),
            (
                "infectio,2026-12-01T08:00,2026-12-01T13:00,personne",
                "line 3: \"personne\" is not an address",
            ),
        ] {
            let e = read_text("r.csv", &format!("{head}{line}\n")).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
            assert!(e.to_string().contains("r.csv"), "{e}");
        }
        let e = read_text("r.csv", "cat,debut\ninfectio,x\n").unwrap_err();
        assert!(e.to_string().contains("line 1: the header"), "{e}");
    }

    #[test]
    fn icalendar_events() {
        let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART;TZID=Europe/Paris:20261201T080000\r\n\
                   DTEND;TZID=Europe/Paris:20261201T130000\r\nATTENDEE;CN=Dr Ruch:mailto:dr.ruch@\r\n hopital.test\r\n\
                   CATEGORIES:infectio\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART:20261201T120000Z\r\n\
                   DTEND:20261201T170000Z\r\nSUMMARY:Garde dr.legrand@hopital.test\r\nCATEGORIES:pneumo\r\n\
                   END:VEVENT\r\nEND:VCALENDAR\r\n";
        let slots = read_text("r.ics", ics).unwrap();
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].expert, "dr.ruch@hopital.test");
        assert_eq!(
            crate::store::ts(slots[0].starts_at),
            "2026-12-01T07:00:00.000Z"
        );
        assert_eq!(slots[1].category, "pneumo");
        assert_eq!(
            crate::store::ts(slots[1].ends_at),
            "2026-12-01T17:00:00.000Z"
        );
        let cut = &ics[..ics.find("END:VEVENT").unwrap()];
        let e = read_text("r.ics", cut).unwrap_err();
        assert!(
            e.to_string()
                .contains("r.ics: line 3: VEVENT without END:VEVENT"),
            "{e}"
        );
    }
}
