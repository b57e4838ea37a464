//! HTML-only bodies to plain text, keeping one line per `<br>`/`<p>` so the form still parses.

use html2text::render::text_renderer::{TaggedLine, TextDecorator};

/// Plain text without markup: no `**` for bold nor `[1]` link footnotes, which would end up in
/// the values; quotes keep a `> ` prefix so quoted history is still recognised.
#[derive(Clone, Debug, Default)]
struct FormDecorator;

impl TextDecorator for FormDecorator {
    type Annotation = ();

    fn decorate_link_start(&mut self, _url: &str) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_link_end(&mut self) -> String {
        String::new()
    }
    fn decorate_em_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, ()) {
        (String::new(), ())
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) {}
    fn decorate_preformat_cont(&self) {}
    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, ()) {
        (title.to_string(), ())
    }
    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }
    fn quote_prefix(&self) -> String {
        "> ".into()
    }
    fn unordered_item_prefix(&self) -> String {
        "- ".into()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        FormDecorator
    }
    fn finalise(&mut self, _links: Vec<String>) -> Vec<TaggedLine<()>> {
        Vec::new()
    }
}

/// Wide enough that no form line is ever wrapped (a wrapped value line would still parse, but
/// a wrapped label would not).
const WIDTH: usize = 10_000;

/// The text of an HTML body, one line per rendered line, trailing spaces removed.
pub fn html_to_text(html: &str) -> String {
    let rendered = html2text::config::with_decorator(FormDecorator)
        .allow_width_overflow()
        // One cell per line: a `Label | value` table becomes a label line then its value.
        .raw_mode(true)
        .string_from_read(html.as_bytes(), WIDTH);
    let text = match rendered {
        Ok(t) => t,
        // html2text only fails on pathological input; crude tag stripping keeps the words.
        Err(_) => strip_tags(html),
    };
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_string()
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push('\n');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lines_and_drops_markup() {
        let html = "<html><body><p><b>Nom</b> : DUPONT<br>Prénom : Jeanne</p>\
                    <p>Question posée :<br>Faut-il traiter ?<br>Merci</p>\
                    <a href=\"https://x.fr\">lien</a><blockquote>ancien</blockquote></body></html>";
        let t = html_to_text(html);
        assert!(t.contains("Nom : DUPONT\nPrénom : Jeanne"), "{t}");
        assert!(
            t.contains("Question posée :\nFaut-il traiter ?\nMerci"),
            "{t}"
        );
        assert!(
            t.contains("lien") && !t.contains("[1]") && !t.contains("**"),
            "{t}"
        );
        assert!(t.contains("> ancien"), "{t}");
    }
}
