//! Fuzz target: the request-form parser (plain text and HTML bodies) with the common template
//! and with a category's own fields, on arbitrary text. Nothing may panic or hang, and what it
//! returns must be usable (the form filled in again, every problem described).
#![no_main]

use std::sync::OnceLock;

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use teleavis::config::FieldSettings;
use teleavis::form::{FormTemplate, html_to_text, parse_form};

/// The templates of the categories in config/dev.toml.in (kinds text, yes/no, choices).
fn templates() -> &'static [FormTemplate] {
    static T: OnceLock<Vec<FormTemplate>> = OnceLock::new();
    T.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/dev.toml.in");
        let text = std::fs::read_to_string(path).expect("config/dev.toml.in");
        // The categories come last, after the placeholders of the other sections.
        let start = text.find("[[category]]").expect("categories");
        let table: toml::Table = text[start..].parse().expect("categories parse");
        let mut out = vec![FormTemplate::common()];
        for c in table
            .get("category")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(fields) = c.get("fields")
                && let Ok(fields) = fields.clone().try_into::<Vec<FieldSettings>>()
                && let Ok(t) = FormTemplate::for_category(&fields)
            {
                out.push(t);
            }
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let today = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
    let html = html_to_text(&text);
    for template in templates() {
        for body in [text.as_ref(), html.as_str()] {
            let parsed = parse_form(template, body, today);
            let _ = parsed.is_valid();
            let _ = parsed.filled_in(template);
        }
    }
});
