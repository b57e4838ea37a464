//! Just enough raw MIME for S/MIME: split an entity into headers and body, read Content-Type
//! and Content-Transfer-Encoding, split a multipart body on its exact raw bytes.
//!
//! Signatures cover exact bytes, so this works on the raw input and never re-serializes
//! anything that is verified. Everything here is total: hostile input yields `None`/`Err`.

use std::borrow::Cow;

use base64::Engine as _;

/// Converts bare LF to CRLF: S/MIME signatures are computed over the canonical form. Existing
/// CRLF pairs and lone CRs are left alone. Borrows when the input is canonical already (the
/// usual case: IMAP serves CRLF).
pub fn canonical_crlf(input: &[u8]) -> Cow<'_, [u8]> {
    match first_bare_lf(input, 0) {
        None => Cow::Borrowed(input),
        Some(first) => Cow::Owned(crlf_from(input, first)),
    }
}

/// [`canonical_crlf`] on an owned buffer: given back untouched when it is canonical already.
pub fn canonical_crlf_owned(input: Vec<u8>) -> Vec<u8> {
    match first_bare_lf(&input, 0) {
        None => input,
        Some(first) => crlf_from(&input, first),
    }
}

fn first_bare_lf(raw: &[u8], from: usize) -> Option<usize> {
    let rest = raw.get(from..)?;
    memchr::memchr_iter(b'\n', rest)
        .map(|p| p + from)
        .find(|&i| i == 0 || raw.get(i - 1) != Some(&b'\r'))
}

/// The canonical copy of `raw`, whose first bare LF is at `first`: whole runs are copied at a
/// time (memchr), not byte by byte.
fn crlf_from(raw: &[u8], first: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64 + 2);
    let mut copied = 0;
    let mut next = Some(first);
    while let Some(i) = next {
        out.extend_from_slice(raw.get(copied..i).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
        copied = i + 1;
        next = first_bare_lf(raw, copied);
    }
    out.extend_from_slice(raw.get(copied..).unwrap_or_default());
    out
}

/// CRLF to LF, for signers that signed the non-canonical form.
pub fn crlf_to_lf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        if b == b'\r' && input.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(hay.get(from..)?, needle).map(|p| p + from)
}

/// A MIME entity in canonical CRLF form, split into its header block and its body.
pub struct Entity<'a> {
    /// Header lines, unfolded: (lowercased name, value).
    headers: Vec<(String, String)>,
    pub header_bytes: &'a [u8],
    pub body: &'a [u8],
}

impl<'a> Entity<'a> {
    /// `raw` must be canonical CRLF. A missing blank line means "headers only".
    pub fn parse(raw: &'a [u8]) -> Entity<'a> {
        let (header_bytes, body): (&[u8], &[u8]) = if raw.starts_with(b"\r\n") {
            (&[], raw.get(2..).unwrap_or_default())
        } else {
            match find(raw, b"\r\n\r\n", 0) {
                Some(p) => (
                    raw.get(..p + 2).unwrap_or(raw),
                    raw.get(p + 4..).unwrap_or_default(),
                ),
                None => (raw, &[]),
            }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in header_bytes.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let text = String::from_utf8_lossy(line);
            if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(text.trim());
                }
                continue;
            }
            if let Some((name, value)) = text.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        Entity {
            headers,
            header_bytes,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> ContentType {
        self.header("content-type")
            .map(ContentType::parse)
            .unwrap_or_else(ContentType::text_plain)
    }

    /// The body with its Content-Transfer-Encoding removed. Only what S/MIME parts use:
    /// base64 and the identity encodings.
    pub fn decoded_body(&self) -> Result<Vec<u8>, String> {
        let cte = self
            .header("content-transfer-encoding")
            .unwrap_or("7bit")
            .trim()
            .to_ascii_lowercase();
        match cte.as_str() {
            "base64" => decode_base64(self.body),
            "7bit" | "8bit" | "binary" | "" => Ok(self.body.to_vec()),
            other => Err(format!(
                "unsupported transfer encoding {other:?} for S/MIME data"
            )),
        }
    }
}

/// Strict base64 (whitespace allowed, padding optional): a truncated or corrupted S/MIME
/// body must not be silently half-decoded. Decoded a line at a time into one output buffer:
/// no whitespace-free copy of the whole body is made.
pub fn decode_base64(body: &[u8]) -> Result<Vec<u8>, String> {
    // Whole quanta of 4 characters are decoded as they come; only the last chunk may be padded.
    const CHUNK: usize = 64 * 1024;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let bad = |e: base64::DecodeError| format!("bad base64: {e}");
    let mut out = Vec::with_capacity(body.len() / 4 * 3 + 3);
    let mut pending: Vec<u8> = Vec::with_capacity(CHUNK + 128);
    for line in body.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.iter().any(u8::is_ascii_whitespace) {
            pending.extend(line.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        } else {
            pending.extend_from_slice(line);
        }
        if pending.len() >= CHUNK {
            let whole = pending.len() / 4 * 4;
            let (now, _) = pending.split_at(whole);
            engine.decode_vec(now, &mut out).map_err(bad)?;
            pending.drain(..whole);
        }
    }
    engine.decode_vec(&pending, &mut out).map_err(bad)?;
    Ok(out)
}

/// Appends `data` as base64 lines of 76 characters with CRLF to `out`, encoded line by line
/// (57 bytes each): no whole-size intermediate string.
pub fn push_base64_lines(out: &mut Vec<u8>, data: &[u8]) {
    let engine = &base64::engine::general_purpose::STANDARD;
    out.reserve(data.len().div_ceil(57) * 78);
    let mut line = [0u8; 76];
    for chunk in data.chunks(57) {
        // 57 bytes always fit in 76 characters: the error branch cannot be taken.
        if let Ok(n) = engine.encode_slice(chunk, &mut line) {
            out.extend_from_slice(line.get(..n).unwrap_or_default());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A parsed Content-Type value: lowercased `type/subtype` and its parameters.
#[derive(Debug, Clone)]
pub struct ContentType {
    pub mime: String,
    params: Vec<(String, String)>,
}

impl ContentType {
    fn text_plain() -> Self {
        ContentType {
            mime: "text/plain".into(),
            params: Vec::new(),
        }
    }

    pub fn parse(value: &str) -> Self {
        let mut pieces = split_params(value).into_iter();
        let mime = pieces
            .next()
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let params = pieces
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                Some((k.trim().to_ascii_lowercase(), v.replace("\\\"", "\"")))
            })
            .collect();
        ContentType { mime, params }
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is(&self, mime: &str) -> bool {
        self.mime == mime
    }
}

/// Splits on `;` outside quoted strings.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Splits a multipart body (canonical CRLF) into the exact bytes of each part: what lies
/// between a delimiter line and the CRLF that precedes the next delimiter (RFC 2046 §5.1.1).
/// `None` when the boundary is unusable or no part is found.
pub fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<&'a [u8]>> {
    if boundary.is_empty() || boundary.len() > 200 {
        return None;
    }
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    // (start of delimiter, end of its line, is the closing delimiter)
    let mut marks: Vec<(usize, usize, bool)> = Vec::new();
    let mut at = 0usize;
    while let Some(p) = find(body, delim, at) {
        at = p + delim.len();
        let line_start = p == 0 || body.get(p.saturating_sub(2)..p) == Some(b"\r\n".as_slice());
        if !line_start {
            continue;
        }
        let rest = body.get(p + delim.len()..).unwrap_or_default();
        let closing = rest.starts_with(b"--");
        let line_end = find(body, b"\r\n", p + delim.len())
            .map(|e| e + 2)
            .unwrap_or(body.len());
        // Only transport padding may follow the boundary on its line.
        let tail = body
            .get(p + delim.len() + if closing { 2 } else { 0 }..line_end)
            .unwrap_or_default();
        if !tail
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            continue;
        }
        marks.push((p, line_end, closing));
        if closing {
            break;
        }
    }
    let mut parts = Vec::new();
    for pair in marks.windows(2) {
        let [(_, start, closing), (next, _, _)] = pair else {
            continue;
        };
        if *closing {
            break;
        }
        let end = if *next >= start + 2 { next - 2 } else { *start };
        parts.push(body.get(*start..end)?);
    }
    // An unterminated last part runs to the end of the body (lenient: truncation is caught
    // by the S/MIME data itself failing to decode).
    if let Some(&(_, start, false)) = marks.last() {
        let rest = body.get(start..)?;
        let rest = rest.strip_suffix(b"\r\n").unwrap_or(rest);
        parts.push(rest);
    }
    if parts.is_empty() { None } else { Some(parts) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_canonicalization() {
        assert_eq!(&*canonical_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(crlf_to_lf(b"a\r\nb\rc\r\n"), b"a\nb\rc\n");
    }

    #[test]
    fn base64_lines_round_trip_beyond_one_decoding_chunk() {
        use base64::Engine as _;
        // 300 KiB: several 64 KiB decoding chunks, lines of 76 with CRLF as RFC 2045 asks.
        let data: Vec<u8> = (0..300 * 1024u32)
            .map(|i| (i * 7 + i / 256) as u8)
            .collect();
        let mut lines = Vec::new();
        push_base64_lines(&mut lines, &data);
        assert!(lines.split(|&b| b == b'\n').all(|l| l.len() <= 77));
        let whole = base64::engine::general_purpose::STANDARD.encode(&data);
        let compact: Vec<u8> = lines
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        assert_eq!(
            compact,
            whole.as_bytes(),
            "same characters as a one-shot encoding"
        );
        assert_eq!(decode_base64(&lines).unwrap(), data);
        // Other line lengths and stray whitespace decode the same.
        let odd: Vec<u8> = whole
            .as_bytes()
            .chunks(61)
            .flat_map(|c| c.iter().copied().chain(*b" \t\n"))
            .collect();
        assert_eq!(decode_base64(&odd).unwrap(), data);
        // Truncated or corrupted data is refused, not half decoded.
        let mut bad = lines.clone();
        bad[100_000] = b'*';
        assert!(decode_base64(&bad).is_err());
        assert!(
            decode_base64(b"QUJD\r\nRA=\r\nQUJD\r\n").is_err(),
            "padding mid-body"
        );
    }

    #[test]
    fn content_type_params() {
        let ct = ContentType::parse(
            "Multipart/Signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"a;b\"",
        );
        assert!(ct.is("multipart/signed"));
        assert_eq!(ct.param("boundary"), Some("a;b"));
        assert_eq!(ct.param("micalg"), Some("sha-256"));
    }

    #[test]
    fn multipart_exact_bytes() {
        let body = b"preamble\r\n--b\r\nA: 1\r\n\r\nx\r\n\r\n--b\r\nsig\r\n--b--\r\nepilogue";
        let parts = split_multipart(body, "b").unwrap();
        assert_eq!(
            parts,
            vec![b"A: 1\r\n\r\nx\r\n".as_slice(), b"sig".as_slice()]
        );
        // A boundary string that is not at a line start is content.
        let body = b"--b\r\nx --b y\r\n--b--";
        assert_eq!(
            split_multipart(body, "b").unwrap(),
            vec![b"x --b y".as_slice()]
        );
        assert!(split_multipart(b"nothing", "b").is_none());
    }

    #[test]
    fn headers_unfold() {
        let raw =
            b"Content-Type: application/pkcs7-mime;\r\n\tsmime-type=enveloped-data\r\n\r\nBODY";
        let e = Entity::parse(raw);
        assert_eq!(e.content_type().param("smime-type"), Some("enveloped-data"));
        assert_eq!(e.body, b"BODY");
    }
}
