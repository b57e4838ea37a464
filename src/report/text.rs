//! The compte-rendu as plain text: the body of the closing mail and `teleavis report --format text`.

use super::ReportData;
use super::content::{Block, blocks};

/// The compte-rendu as UTF-8 text, `\n` line ends, no wrapping (the mail layer encodes it).
pub fn render_text(d: &ReportData) -> String {
    let mut out = String::with_capacity(4096);
    let mut last_blank = true;
    for block in blocks(d) {
        match block {
            Block::Title(t) => {
                out.push_str(&t);
                out.push('\n');
                out.push_str(&"=".repeat(t.chars().count()));
                out.push_str("\n\n");
                last_blank = true;
                continue;
            }
            Block::Heading(h) => {
                if !last_blank {
                    out.push('\n');
                }
                out.push_str(&h);
                out.push('\n');
                out.push_str(&"-".repeat(h.chars().count()));
                out.push('\n');
            }
            Block::Strong(s) | Block::Line(s) => {
                out.push_str(&s);
                out.push('\n');
            }
            Block::Blank => {
                if !last_blank {
                    out.push('\n');
                }
                last_blank = true;
                continue;
            }
        }
        last_blank = false;
    }
    out
}
