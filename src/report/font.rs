//! Glyph advance widths read from the embedded TrueType fonts, for word wrapping.
//!
//! printpdf 0.7 does not expose its font metrics, so this reads the three tables it needs
//! (`head`, `hhea`/`hmtx`, `cmap` formats 4 and 12) straight from the bytes: a few dozen lines
//! instead of another dependency. Every read is bounds-checked; a malformed font is an error.

use super::ReportError;

/// Advance widths of one font, borrowed from its bytes.
pub(crate) struct Metrics<'a> {
    data: &'a [u8],
    units_per_em: f32,
    num_h_metrics: usize,
    hmtx: usize,
    cmap: Cmap,
}

enum Cmap {
    /// Offset of a format 4 subtable (BMP).
    Format4(usize),
    /// Offset of a format 12 subtable (full Unicode).
    Format12(usize),
}

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *d.get(at)?,
        *d.get(at + 1)?,
        *d.get(at + 2)?,
        *d.get(at + 3)?,
    ]))
}

fn table(d: &[u8], tag: &[u8; 4]) -> Option<usize> {
    let n = usize::from(u16_at(d, 4)?);
    (0..n).find_map(|i| {
        let rec = 12 + 16 * i;
        (d.get(rec..rec + 4)? == tag).then_some(())?;
        usize::try_from(u32_at(d, rec + 8)?).ok()
    })
}

impl<'a> Metrics<'a> {
    pub(crate) fn parse(data: &'a [u8]) -> Result<Self, ReportError> {
        Self::try_parse(data).ok_or(ReportError::Font("missing or malformed TrueType tables"))
    }

    fn try_parse(d: &'a [u8]) -> Option<Self> {
        let head = table(d, b"head")?;
        let hhea = table(d, b"hhea")?;
        let hmtx = table(d, b"hmtx")?;
        let cmap_at = table(d, b"cmap")?;
        let units_per_em = f32::from(u16_at(d, head + 18)?);
        let num_h_metrics = usize::from(u16_at(d, hhea + 34)?);
        if units_per_em <= 0.0 || num_h_metrics == 0 {
            return None;
        }
        // Prefer the full-Unicode subtable, else the BMP one (Windows or Unicode platform).
        let n = usize::from(u16_at(d, cmap_at + 2)?);
        let mut f4 = None;
        let mut f12 = None;
        for i in 0..n {
            let rec = cmap_at + 4 + 8 * i;
            let platform = u16_at(d, rec)?;
            let encoding = u16_at(d, rec + 2)?;
            let sub = cmap_at + usize::try_from(u32_at(d, rec + 4)?).ok()?;
            let unicode = platform == 0 || (platform == 3 && (encoding == 1 || encoding == 10));
            if !unicode {
                continue;
            }
            match u16_at(d, sub)? {
                4 => f4 = f4.or(Some(sub)),
                12 => f12 = f12.or(Some(sub)),
                _ => {}
            }
        }
        let cmap = match (f12, f4) {
            (Some(s), _) => Cmap::Format12(s),
            (None, Some(s)) => Cmap::Format4(s),
            (None, None) => return None,
        };
        Some(Self {
            data: d,
            units_per_em,
            num_h_metrics,
            hmtx,
            cmap,
        })
    }

    /// The glyph for `c`, if the font has one (glyph 0 is `.notdef`, i.e. none).
    pub(crate) fn glyph(&self, c: char) -> Option<u16> {
        let g = match self.cmap {
            Cmap::Format12(s) => self.glyph12(s, u32::from(c)),
            Cmap::Format4(s) => u16::try_from(u32::from(c))
                .ok()
                .and_then(|c| self.glyph4(s, c)),
        }?;
        (g != 0).then_some(g)
    }

    fn glyph12(&self, s: usize, c: u32) -> Option<u16> {
        let d = self.data;
        let groups = usize::try_from(u32_at(d, s + 12)?).ok()?;
        // Groups are sorted by start code: binary search.
        let (mut lo, mut hi) = (0usize, groups);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let g = s + 16 + 12 * mid;
            let start = u32_at(d, g)?;
            let end = u32_at(d, g + 4)?;
            if c < start {
                hi = mid;
            } else if c > end {
                lo = mid + 1;
            } else {
                return u16::try_from(u32_at(d, g + 8)? + (c - start)).ok();
            }
        }
        None
    }

    fn glyph4(&self, s: usize, c: u16) -> Option<u16> {
        let d = self.data;
        let seg_count = usize::from(u16_at(d, s + 6)? / 2);
        let ends = s + 14;
        let starts = ends + 2 * seg_count + 2;
        let deltas = starts + 2 * seg_count;
        let ranges = deltas + 2 * seg_count;
        for i in 0..seg_count {
            if u16_at(d, ends + 2 * i)? < c {
                continue;
            }
            let start = u16_at(d, starts + 2 * i)?;
            if start > c {
                return None;
            }
            let delta = u16_at(d, deltas + 2 * i)?;
            let range = u16_at(d, ranges + 2 * i)?;
            if range == 0 {
                return Some(c.wrapping_add(delta));
            }
            let at = ranges + 2 * i + usize::from(range) + 2 * usize::from(c - start);
            let g = u16_at(d, at)?;
            return Some(if g == 0 { 0 } else { g.wrapping_add(delta) });
        }
        None
    }

    /// Advance width of `c` in em units (0 when the font lacks it: printpdf drops such chars).
    pub(crate) fn advance_em(&self, c: char) -> f32 {
        let Some(g) = self.glyph(c) else { return 0.0 };
        let i = usize::from(g).min(self.num_h_metrics - 1);
        u16_at(self.data, self.hmtx + 4 * i).map_or(0.0, |w| f32::from(w) / self.units_per_em)
    }

    /// Width of `s` at `size` points, in points (no kerning: printpdf does not apply any).
    pub(crate) fn width(&self, s: &str, size: f32) -> f32 {
        s.chars().map(|c| self.advance_em(c)).sum::<f32>() * size
    }
}
