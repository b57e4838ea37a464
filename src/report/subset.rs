//! Font subsetting: keeps only the glyph outlines the document draws.
//!
//! printpdf 0.7 embeds whole fonts (its subsetter needs `allsorts`, not in our tree): two
//! DejaVu faces make every compte-rendu ~1.5 MB. Here unused glyphs are emptied in `glyf`
//! while glyph ids stay unchanged, so `cmap`, `hmtx` and printpdf's width and ToUnicode maps
//! remain valid; tables a PDF viewer never reads (OpenType layout, kerning, glyph names) go.

use std::collections::BTreeSet;

use super::font::Metrics;

/// Tables kept, in tag order (the directory must be sorted). `post` is cut to its header.
const KEEP: [&[u8; 4]; 13] = [
    b"OS/2", b"cmap", b"cvt ", b"fpgm", b"glyf", b"head", b"hhea", b"hmtx", b"loca", b"maxp",
    b"name", b"post", b"prep",
];

fn u16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

fn u32_at(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

/// The bytes of table `tag`, if present.
fn table<'a>(d: &'a [u8], tag: &[u8; 4]) -> Option<&'a [u8]> {
    let n = usize::from(u16_at(d, 4)?);
    (0..n).find_map(|i| {
        let rec = 12 + 16 * i;
        (d.get(rec..rec + 4)? == tag).then_some(())?;
        let off = usize::try_from(u32_at(d, rec + 8)?).ok()?;
        let len = usize::try_from(u32_at(d, rec + 12)?).ok()?;
        d.get(off..off.checked_add(len)?)
    })
}

fn checksum(t: &[u8]) -> u32 {
    t.chunks(4).fold(0u32, |s, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        s.wrapping_add(u32::from_be_bytes(w))
    })
}

/// A copy of `font` drawing only `chars` (plus `.notdef` and composite components), or `None`
/// when the font is not a plain TrueType the code understands: the caller then embeds it whole.
pub(crate) fn subset(font: &[u8], chars: impl IntoIterator<Item = char>) -> Option<Vec<u8>> {
    let metrics = Metrics::parse(font).ok()?;
    let head = table(font, b"head")?;
    let maxp = table(font, b"maxp")?;
    let loca = table(font, b"loca")?;
    let glyf = table(font, b"glyf")?;
    let long_loca = match u16_at(head, 50)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let num_glyphs = usize::from(u16_at(maxp, 4)?);
    let range = |g: usize| -> Option<(usize, usize)> {
        let (a, b) = if long_loca {
            (
                usize::try_from(u32_at(loca, 4 * g)?).ok()?,
                usize::try_from(u32_at(loca, 4 * g + 4)?).ok()?,
            )
        } else {
            (
                usize::from(u16_at(loca, 2 * g)?) * 2,
                usize::from(u16_at(loca, 2 * g + 2)?) * 2,
            )
        };
        (a <= b && b <= glyf.len()).then_some((a, b))
    };

    // Glyphs to keep, closed over composite references.
    let mut keep = BTreeSet::from([0u16]);
    let mut todo: Vec<u16> = chars.into_iter().filter_map(|c| metrics.glyph(c)).collect();
    while let Some(g) = todo.pop() {
        if usize::from(g) >= num_glyphs || !keep.insert(g) {
            continue;
        }
        let (a, b) = range(usize::from(g))?;
        let data = &glyf[a..b];
        if data.len() < 10 || (u16_at(data, 0)? as i16) >= 0 {
            continue;
        }
        let mut p = 10;
        loop {
            let flags = u16_at(data, p)?;
            todo.push(u16_at(data, p + 2)?);
            p += 4 + if flags & 0x0001 != 0 { 4 } else { 2 };
            p += if flags & 0x0008 != 0 {
                2
            } else if flags & 0x0040 != 0 {
                4
            } else if flags & 0x0080 != 0 {
                8
            } else {
                0
            };
            if flags & 0x0020 == 0 {
                break;
            }
        }
    }

    let mut new_glyf = Vec::new();
    let mut new_loca = Vec::with_capacity(4 * (num_glyphs + 1));
    for g in 0..num_glyphs {
        new_loca.extend_from_slice(&u32::try_from(new_glyf.len()).ok()?.to_be_bytes());
        if g <= usize::from(u16::MAX) && keep.contains(&(g as u16)) {
            let (a, b) = range(g)?;
            new_glyf.extend_from_slice(&glyf[a..b]);
            while new_glyf.len() % 4 != 0 {
                new_glyf.push(0);
            }
        }
    }
    new_loca.extend_from_slice(&u32::try_from(new_glyf.len()).ok()?.to_be_bytes());

    let mut new_head = head.to_vec();
    new_head.get_mut(8..12)?.copy_from_slice(&[0; 4]); // checkSumAdjustment, set below
    new_head
        .get_mut(50..52)?
        .copy_from_slice(&1u16.to_be_bytes()); // long loca
    let mut new_post = table(font, b"post")?.get(..32)?.to_vec();
    new_post[..4].copy_from_slice(&0x0003_0000u32.to_be_bytes()); // no glyph names

    let mut tables: Vec<(&[u8; 4], Vec<u8>)> = Vec::with_capacity(KEEP.len());
    for tag in KEEP {
        let data = match tag {
            b"glyf" => std::mem::take(&mut new_glyf),
            b"loca" => std::mem::take(&mut new_loca),
            b"head" => std::mem::take(&mut new_head),
            b"post" => std::mem::take(&mut new_post),
            _ => match table(font, tag) {
                Some(t) => t.to_vec(),
                None => continue,
            },
        };
        tables.push((tag, data));
    }

    let n = u16::try_from(tables.len()).ok()?;
    let pow2 = 1u16 << (15 - n.leading_zeros());
    let mut out = Vec::with_capacity(12 + 16 * tables.len());
    out.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    for v in [
        n,
        pow2 * 16,
        pow2.trailing_zeros() as u16,
        n * 16 - pow2 * 16,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let mut offset = 12 + 16 * tables.len();
    let mut head_at = None;
    for (tag, data) in &tables {
        if *tag == b"head" {
            head_at = Some(offset);
        }
        out.extend_from_slice(*tag);
        out.extend_from_slice(&checksum(data).to_be_bytes());
        out.extend_from_slice(&u32::try_from(offset).ok()?.to_be_bytes());
        out.extend_from_slice(&u32::try_from(data.len()).ok()?.to_be_bytes());
        offset += data.len().div_ceil(4) * 4;
    }
    for (_, data) in &tables {
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(4) * 4, 0);
    }
    let adjust = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out));
    out.get_mut(head_at? + 8..head_at? + 12)?
        .copy_from_slice(&adjust.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

    #[test]
    fn subset_is_small_and_keeps_metrics() {
        let s = subset(REGULAR, "Téléexpertise « œ » — ’ à ç ù ê".chars()).expect("subset");
        assert!(s.len() < REGULAR.len() / 4, "{} bytes", s.len());
        let full = Metrics::parse(REGULAR).expect("full");
        let sub = Metrics::parse(&s).expect("subset parses back");
        for c in "Téléexpertise « œ » — ’ àçùêZ".chars() {
            assert_eq!(full.glyph(c), sub.glyph(c));
            assert_eq!(full.advance_em(c), sub.advance_em(c));
        }
        // The kept glyph has its outline, an unused one is empty.
        let glyf_len = |font: &[u8], c: char| -> usize {
            let g = usize::from(Metrics::parse(font).expect("m").glyph(c).expect("g"));
            let loca = table(font, b"loca").expect("loca");
            let a = u32_at(loca, 4 * g).expect("a");
            let b = u32_at(loca, 4 * g + 4).expect("b");
            (b - a) as usize
        };
        assert!(glyf_len(&s, 'é') > 0);
        assert_eq!(glyf_len(&s, 'Z'), 0);
        // Whole-font checksum per the spec.
        assert_eq!(checksum(&s), 0xB1B0_AFBA);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(subset(b"nope", "a".chars()).is_none());
    }
}
