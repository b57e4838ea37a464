//! The compte-rendu as an A4 PDF: layout (wrapping, page breaks, page numbers) and printpdf calls.
//!
//! Layout happens first, in points, against the real glyph widths of the embedded DejaVu fonts;
//! only then is the document drawn, so the page count is known for the "page n / N" footers.

use printpdf::{IndirectFontRef, Mm, OffsetDateTime, PdfDocument};
use sha2::{Digest, Sha256};

use super::content::{Block, TITLE, blocks};
use super::font::Metrics;
use super::subset::subset;
use super::{ReportData, ReportError};

/// DejaVu covers French accents and typographic marks (« » — ’ œ); licence in assets/fonts.
const REGULAR_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const BOLD_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

const PT_PER_MM: f32 = 72.0 / 25.4;
const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN_X: f32 = 20.0;
const MARGIN_TOP: f32 = 20.0;
/// Leaves room for the footer line below the text.
const MARGIN_BOTTOM: f32 = 22.0;
const FOOTER_Y: f32 = 12.0;

const BODY: f32 = 10.0;
const BODY_LEAD: f32 = 13.0;
const BLANK_LEAD: f32 = 6.5;
const HEADING: f32 = 12.0;
const TITLE_SIZE: f32 = 16.0;
const FOOTER: f32 = 8.0;

/// One laid-out line of text.
struct Placed {
    page: usize,
    /// Baseline, in points from the top of the text area.
    baseline: f32,
    bold: bool,
    size: f32,
    text: String,
}

/// The compte-rendu as PDF bytes. No I/O: the fonts are compiled in.
pub fn render_pdf(d: &ReportData) -> Result<Vec<u8>, ReportError> {
    let regular = Metrics::parse(REGULAR_TTF)?;
    let bold = Metrics::parse(BOLD_TTF)?;
    let placed = layout(&blocks(d), &regular, &bold);
    let pages = placed.last().map_or(1, |p| p.page + 1);

    let title = format!("{TITLE} {}", d.thread_id);
    let (doc, page0, layer0) = PdfDocument::new(title.as_str(), Mm(PAGE_W), Mm(PAGE_H), "texte");
    // A stable document id: the same report generated twice is recognisably the same document.
    let id = hex::encode(Sha256::digest(
        format!("{}|{}", d.thread_id, d.generated_at.timestamp()).as_bytes(),
    ));
    let mut doc = doc
        .with_title(title.as_str())
        .with_producer("teleavis")
        .with_creator("teleavis")
        .with_document_id(id.chars().take(32).collect());
    if let Ok(at) = OffsetDateTime::from_unix_timestamp(d.generated_at.timestamp()) {
        doc = doc
            .with_creation_date(at)
            .with_mod_date(at)
            .with_metadata_date(at);
    }
    let footers: Vec<String> = (1..=pages)
        .map(|n| format!("{} — {TITLE} — page {n} / {pages}", d.thread_id))
        .collect();
    // Embed only the glyphs drawn (a whole face is ~700 kB); whole faces if subsetting fails.
    let drawn = |bold: bool| {
        placed
            .iter()
            .filter(move |p| p.bold == bold)
            .flat_map(|p| p.text.chars())
    };
    let regular_ttf = subset(
        REGULAR_TTF,
        drawn(false).chain(footers.iter().flat_map(|f| f.chars())),
    );
    let bold_ttf = subset(BOLD_TTF, drawn(true));
    let font_regular = doc
        .add_external_font(regular_ttf.as_deref().unwrap_or(REGULAR_TTF))
        .map_err(|e| ReportError::Pdf(e.to_string()))?;
    let font_bold = doc
        .add_external_font(bold_ttf.as_deref().unwrap_or(BOLD_TTF))
        .map_err(|e| ReportError::Pdf(e.to_string()))?;

    let mut layers = Vec::with_capacity(pages);
    layers.push(doc.get_page(page0).get_layer(layer0));
    for _ in 1..pages {
        let (p, l) = doc.add_page(Mm(PAGE_W), Mm(PAGE_H), "texte");
        layers.push(doc.get_page(p).get_layer(l));
    }

    let font_of = |b: bool| -> &IndirectFontRef { if b { &font_bold } else { &font_regular } };
    for line in &placed {
        let Some(layer) = layers.get(line.page) else {
            continue;
        };
        let y = PAGE_H - MARGIN_TOP - line.baseline / PT_PER_MM;
        layer.use_text(
            line.text.as_str(),
            line.size,
            Mm(MARGIN_X),
            Mm(y),
            font_of(line.bold),
        );
    }
    // The id on every page: a loose page can still be put back in the right record.
    for (layer, footer) in layers.iter().zip(&footers) {
        let w = regular.width(footer, FOOTER) / PT_PER_MM;
        layer.use_text(
            footer.as_str(),
            FOOTER,
            Mm(PAGE_W - MARGIN_X - w),
            Mm(FOOTER_Y),
            &font_regular,
        );
    }

    doc.save_to_bytes()
        .map_err(|e| ReportError::Pdf(e.to_string()))
}

/// Places every block on pages: wraps to the text width, breaks pages, keeps a heading with
/// the line that follows it.
fn layout(blocks: &[Block], regular: &Metrics, bold: &Metrics) -> Vec<Placed> {
    let max_w = (PAGE_W - 2.0 * MARGIN_X) * PT_PER_MM;
    let area_h = (PAGE_H - MARGIN_TOP - MARGIN_BOTTOM) * PT_PER_MM;
    let mut out = Vec::with_capacity(blocks.len() + blocks.len() / 4);
    let mut page = 0usize;
    let mut y = 0.0f32;

    for block in blocks {
        let (text, is_bold, size, lead, gap_before) = match block {
            Block::Blank => {
                if y > 0.0 {
                    y += BLANK_LEAD;
                }
                continue;
            }
            Block::Title(t) => (t, true, TITLE_SIZE, 22.0, 0.0),
            Block::Heading(t) => (t, true, HEADING, 16.0, 8.0),
            Block::Strong(t) => (t, true, BODY, BODY_LEAD, 0.0),
            Block::Line(t) => (t, false, BODY, BODY_LEAD, 0.0),
        };
        let m = if is_bold { bold } else { regular };
        let text = printable(text, m);
        let lines = wrap(&text, m, size, max_w);
        let gap = if y > 0.0 { gap_before } else { 0.0 };
        // A heading or a message's author line alone at the foot of a page is useless: move it
        // with what follows it.
        let keep = match block {
            Block::Heading(_) => gap + lead + 2.0 * BODY_LEAD,
            Block::Strong(_) => gap + lead + BODY_LEAD,
            _ => gap + lead,
        };
        if y > 0.0 && y + keep > area_h {
            page += 1;
            y = 0.0;
        } else {
            y += gap;
        }
        for line in lines {
            if y > 0.0 && y + lead > area_h {
                page += 1;
                y = 0.0;
            }
            out.push(Placed {
                page,
                baseline: y + size,
                bold: is_bold,
                size,
                text: line,
            });
            y += lead;
        }
    }
    out
}

/// Replaces characters the font cannot draw by U+FFFD (or `?`), so nothing vanishes silently.
fn printable(s: &str, m: &Metrics) -> String {
    let replacement = if m.glyph('\u{fffd}').is_some() {
        '\u{fffd}'
    } else {
        '?'
    };
    s.chars()
        .map(|c| {
            if c == ' ' || m.glyph(c).is_some() {
                c
            } else {
                replacement
            }
        })
        .collect()
}

/// Greedy word wrap on spaces; a word wider than the line (a SHA-256, a URL) is cut by glyph.
fn wrap(text: &str, m: &Metrics, size: f32, max_w: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let indent_len = text.len() - text.trim_start_matches(' ').len();
    let indent = &text[..indent_len];
    let space = m.width(" ", size);
    let mut cur = String::new();
    let mut cur_w = 0.0f32;
    let mut first = true;
    for word in text[indent_len..].split(' ').filter(|w| !w.is_empty()) {
        // Keep the paragraph's leading indentation on its first word.
        let word = if first && !indent.is_empty() {
            format!("{indent}{word}")
        } else {
            word.to_owned()
        };
        first = false;
        let w = m.width(&word, size);
        if !cur.is_empty() && cur_w + space + w <= max_w {
            cur.push(' ');
            cur.push_str(&word);
            cur_w += space + w;
            continue;
        }
        if !cur.is_empty() {
            lines.push(std::mem::take(&mut cur));
        }
        cur_w = 0.0;
        for c in word.chars() {
            let cw = m.width(c.encode_utf8(&mut [0; 4]), size);
            if !cur.is_empty() && cur_w + cw > max_w {
                lines.push(std::mem::take(&mut cur));
                cur_w = 0.0;
            }
            cur.push(c);
            cur_w += cw;
        }
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn font_metrics_are_read() {
        let m = Metrics::parse(REGULAR_TTF).expect("font parses");
        for c in [
            'a', 'é', 'è', 'à', 'ç', 'ù', 'ê', 'œ', '«', '»', '—', '’', '\u{a0}', '–',
        ] {
            assert!(m.glyph(c).is_some(), "glyph for {c:?}");
            assert!(m.advance_em(c) > 0.0, "width for {c:?}");
        }
        assert!(m.advance_em('i') < m.advance_em('M'));
        assert!(m.glyph('\u{10FFFD}').is_none());
        let b = Metrics::parse(BOLD_TTF).expect("bold parses");
        assert!(b.width("Téléexpertise", 10.0) > m.width("Téléexpertise", 10.0));
        assert!(Metrics::parse(b"not a font").is_err());
    }

    #[test]
    fn wrap_fits_and_keeps_everything() {
        let m = Metrics::parse(REGULAR_TTF).expect("font parses");
        let max = 200.0;
        let sha = "ab".repeat(32);
        let text = format!("  début {sha} et une phrase assez longue pour passer à la ligne, fin");
        let lines = wrap(&text, &m, 10.0, max);
        assert!(lines.len() >= 3, "{lines:?}");
        for l in &lines {
            assert!(m.width(l, 10.0) <= max + 0.01, "too wide: {l}");
        }
        assert!(lines[0].starts_with("  début"));
        let joined: String = lines.concat().chars().filter(|c| *c != ' ').collect();
        let expected: String = text.chars().filter(|c| *c != ' ').collect();
        assert_eq!(joined, expected);
        assert_eq!(wrap("", &m, 10.0, max), vec![String::new()]);
    }

    #[test]
    fn unknown_glyphs_are_visible() {
        let m = Metrics::parse(REGULAR_TTF).expect("font parses");
        assert_eq!(printable("a\u{10FFFD}b", &m), "a\u{fffd}b");
    }
}
