//! Deadlines: `deadline_hours` per category, or `urgent_deadline_minutes` for a request sent to
//! `+<category>-urgent` or whose form says `Urgence : oui`.

use chrono::{DateTime, Duration, Utc};

use crate::catalogue::Category;
use crate::form::{FieldValue, fold_label};

/// The plus-tag of the urgent line of `category`: `infectio-urgent`.
pub fn urgent_tag(tag: &str) -> Option<&str> {
    tag.strip_suffix("-urgent")
}

/// Whether a request is urgent: its plus-tag, or an `Urgence : oui` line (a field the
/// category does not list, so read from the unlisted ones).
pub fn is_urgent(tags: &[String], unlisted: &[FieldValue]) -> bool {
    tags.iter().any(|t| urgent_tag(&t.to_lowercase()).is_some())
        || unlisted.iter().any(|f| {
            fold_label(&f.label) == "urgence"
                && matches!(
                    fold_label(&f.value).trim_end_matches('.'),
                    "oui" | "yes" | "o"
                )
        })
}

/// The deadline of a request opened at `now`. An urgent request to a category without an
/// urgent line gets the standard deadline.
pub fn deadline(category: &Category, urgent: bool, now: DateTime<Utc>) -> DateTime<Utc> {
    due(
        category.deadline_hours,
        category.urgent_deadline_minutes,
        urgent,
        now,
    )
}

/// The deadline from a category's two keys.
pub fn due(
    deadline_hours: f64,
    urgent_deadline_minutes: Option<u32>,
    urgent: bool,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match (urgent, urgent_deadline_minutes) {
        (true, Some(m)) => now + Duration::minutes(i64::from(m)),
        // `check-config` keeps the hours between a second and ten years: no overflow.
        _ => now + Duration::milliseconds((deadline_hours * 3_600_000.0).round() as i64),
    }
}

/// `jeudi 03/12/2026 à 14:05`, in the gateway's time zone.
pub fn french_time(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    use chrono::Datelike;
    let local = at.with_timezone(&tz);
    const DAYS: [&str; 7] = [
        "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    ];
    let day = DAYS[local.weekday().num_days_from_monday() as usize];
    format!("{day} {}", local.format("%d/%m/%Y à %H:%M"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CategorySettings;

    fn deadline(c: &CategorySettings, urgent: bool, now: DateTime<Utc>) -> DateTime<Utc> {
        due(c.deadline_hours, c.urgent_deadline_minutes, urgent, now)
    }

    fn fv(label: &str, value: &str) -> FieldValue {
        FieldValue {
            key: "unlisted".into(),
            label: label.into(),
            value: value.into(),
        }
    }

    #[test]
    fn urgency_and_deadlines() {
        assert!(is_urgent(&["infectio-urgent".into()], &[]));
        assert!(!is_urgent(&["infectio".into()], &[]));
        assert!(is_urgent(&[], &[fv("Urgence", "Oui")]));
        assert!(!is_urgent(&[], &[fv("Urgence", "non")]));
        let now = crate::store::parse_ts("2026-12-01T13:00:00Z").unwrap();
        let mut c: CategorySettings = toml::from_str(
            "id = \"infectio\"\nname = \"Maladies infectieuses\"\ngroup_address = \"i@h.test\"",
        )
        .unwrap();
        assert_eq!(deadline(&c, false, now), now + Duration::hours(48));
        assert_eq!(deadline(&c, true, now), now + Duration::hours(48));
        c.urgent_deadline_minutes = Some(30);
        assert_eq!(deadline(&c, true, now), now + Duration::minutes(30));
        c.deadline_hours = 0.005;
        assert_eq!(deadline(&c, false, now), now + Duration::seconds(18));
        assert_eq!(
            french_time(now, chrono_tz::Europe::Paris),
            "mardi 01/12/2026 à 14:00"
        );
    }
}
