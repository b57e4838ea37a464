//! The compte-rendu as an A4 PDF/A-2u: layout (wrapping, page breaks, page numbers) and the
//! krilla calls that draw it.
//!
//! Layout happens first, in points, against the glyph widths of the embedded DejaVu fonts (read
//! with `skrifa`, the parser krilla itself uses); only then is the document drawn, so the page
//! count is known for the "page n / N" footers. krilla embeds and subsets the fonts, writes the
//! ToUnicode maps, the XMP metadata and the sRGB OutputIntent, and refuses to produce a file
//! that would break PDF/A: a record kept for decades must stay readable without its fonts.

use krilla::configure::ConfigurationBuilder;
use krilla::configure::validate::Archival;
use krilla::geom::Point;
use krilla::metadata::{DateTime as PdfDate, Metadata};
use krilla::page::PageSettings;
use krilla::text::{Font, TextDirection};
use krilla::{Document, SerializeSettings};
use sha2::{Digest, Sha256};
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, MetadataProvider};

use chrono::{Datelike, Timelike};

use super::content::{Block, TITLE, blocks};
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

/// Advance widths and character coverage of one face.
struct Metrics<'a> {
    font: FontRef<'a>,
    widths: GlyphMetrics<'a>,
    upem: f32,
}

impl<'a> Metrics<'a> {
    fn parse(ttf: &'a [u8]) -> Result<Self, ReportError> {
        let font = FontRef::new(ttf).map_err(|_| ReportError::Font("not a TrueType font"))?;
        let widths = font.glyph_metrics(Size::unscaled(), LocationRef::default());
        let upem = f32::from(
            font.metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        if upem <= 0.0 {
            return Err(ReportError::Font("no units per em"));
        }
        Ok(Metrics { font, widths, upem })
    }

    /// Whether the face draws `c` (glyph 0 is .notdef, the empty box).
    fn covers(&self, c: char) -> bool {
        self.font.charmap().map(c).is_some_and(|g| g.to_u32() != 0)
    }

    /// Advance of `c` in em; 0 for a character the face lacks.
    fn advance_em(&self, c: char) -> f32 {
        self.font
            .charmap()
            .map(c)
            .and_then(|g| self.widths.advance_width(g))
            .map_or(0.0, |w| w / self.upem)
    }

    /// Width of `s` at `size`, in points.
    fn width(&self, s: &str, size: f32) -> f32 {
        s.chars().map(|c| self.advance_em(c)).sum::<f32>() * size
    }
}

/// One laid-out line of text.
struct Placed {
    page: usize,
    /// Baseline, in points from the top of the text area.
    baseline: f32,
    bold: bool,
    size: f32,
    text: String,
}

/// The compte-rendu as PDF/A bytes. No I/O: the fonts are compiled in.
pub fn render_pdf(d: &ReportData) -> Result<Vec<u8>, ReportError> {
    let regular = Metrics::parse(REGULAR_TTF)?;
    let bold = Metrics::parse(BOLD_TTF)?;
    let placed = layout(&blocks(d), &regular, &bold);
    let pages = placed.last().map_or(1, |p| p.page + 1);
    let font_regular = Font::new(REGULAR_TTF.to_vec().into(), 0)
        .ok_or(ReportError::Font("regular face unreadable"))?;
    let font_bold =
        Font::new(BOLD_TTF.to_vec().into(), 0).ok_or(ReportError::Font("bold face unreadable"))?;

    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A2_U)
        .finish()
        .map_err(|e| ReportError::Pdf(format!("{e:?}")))?;
    let settings = SerializeSettings {
        configuration,
        ..SerializeSettings::default()
    };
    let mut doc = Document::new_with(settings);
    let title = format!("{TITLE} {}", d.thread_id);
    let g = d.generated_at;
    let at = PdfDate::new(u16::try_from(g.year()).unwrap_or(2000))
        .month(g.month() as u8)
        .day(g.day() as u8)
        .hour(g.hour() as u8)
        .minute(g.minute() as u8)
        .second(g.second() as u8)
        .utc_offset_hour(0)
        .utc_offset_minute(0);
    // A stable document id: the same report generated twice is recognisably the same document.
    let id = hex::encode(Sha256::digest(
        format!("{}|{}", d.thread_id, d.generated_at.timestamp()).as_bytes(),
    ));
    let author = if d.network.trim().is_empty() {
        "teleavis".to_owned()
    } else {
        d.network.trim().to_owned()
    };
    doc.set_metadata(
        Metadata::new()
            .title(title)
            .authors(vec![author])
            .language("fr-FR".to_owned())
            .creator("teleavis".to_owned())
            .producer(format!("teleavis {}", env!("CARGO_PKG_VERSION")))
            .creation_date(at)
            .document_id(id.chars().take(32).collect()),
    );
    let footers: Vec<String> = (1..=pages)
        .map(|n| format!("{} — {TITLE} — page {n} / {pages}", d.thread_id))
        .collect();
    let page_settings = PageSettings::from_wh(PAGE_W * PT_PER_MM, PAGE_H * PT_PER_MM)
        .ok_or_else(|| ReportError::Pdf("page size".into()))?;
    for (n, footer) in footers.iter().enumerate() {
        let mut page = doc.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        for line in placed.iter().filter(|p| p.page == n) {
            let font = if line.bold { &font_bold } else { &font_regular };
            surface.draw_text(
                Point::from_xy(MARGIN_X * PT_PER_MM, MARGIN_TOP * PT_PER_MM + line.baseline),
                font.clone(),
                line.size,
                &line.text,
                false,
                TextDirection::Auto,
            );
        }
        // The id on every page: a loose page can still be put back in the right record.
        let w = regular.width(footer, FOOTER);
        surface.draw_text(
            Point::from_xy(
                (PAGE_W - MARGIN_X) * PT_PER_MM - w,
                (PAGE_H - FOOTER_Y) * PT_PER_MM,
            ),
            font_regular.clone(),
            FOOTER,
            footer,
            false,
            TextDirection::Auto,
        );
        surface.finish();
        page.finish();
    }
    doc.finish().map_err(|e| ReportError::Pdf(format!("{e:?}")))
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
    let replacement = if m.covers('\u{fffd}') {
        '\u{fffd}'
    } else {
        '?'
    };
    s.chars()
        .map(|c| {
            if c == ' ' || m.covers(c) {
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
            assert!(m.covers(c), "glyph for {c:?}");
            assert!(m.advance_em(c) > 0.0, "width for {c:?}");
        }
        assert!(m.advance_em('i') < m.advance_em('M'));
        assert!(!m.covers('\u{10FFFD}'));
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
