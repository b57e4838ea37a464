//! RFC 3501 §5.1.3 modified UTF-7, the encoding of IMAP mailbox names (`Traités` is
//! `Trait&AOk-s` on the wire). async-imap sends names as given, so we encode them ourselves.

use base64::Engine as _;
use base64::alphabet::IMAP_MUTF7;
use base64::engine::{GeneralPurpose, general_purpose::NO_PAD};

const B64: GeneralPurpose = GeneralPurpose::new(&IMAP_MUTF7, NO_PAD);

/// Encodes a mailbox name: printable ASCII stays, `&` becomes `&-`, anything else is UTF-16BE in
/// modified base64 between `&` and `-`.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&B64.encode(bytes));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decodes a mailbox name as the server lists it; `None` if it is not valid modified UTF-7.
pub fn decode(wire: &str) -> Option<String> {
    let mut out = String::with_capacity(wire.len());
    let mut rest = wire;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = B64.decode(encoded).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            let text = String::from_utf16(&units).ok()?;
            // Printable ASCII must not be base64-encoded (RFC 3501).
            if text.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&text);
        }
        rest = &after[end + 1..];
    }
    if rest.chars().any(|c| !(' '..='~').contains(&c)) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traites() {
        assert_eq!(encode("Traités"), "Trait&AOk-s");
        assert_eq!(decode("Trait&AOk-s").as_deref(), Some("Traités"));
    }

    #[test]
    fn ascii_and_ampersand() {
        assert_eq!(encode("Quarantaine"), "Quarantaine");
        assert_eq!(encode("INBOX"), "INBOX");
        assert_eq!(encode("A&B"), "A&-B");
        assert_eq!(decode("A&-B").as_deref(), Some("A&B"));
        assert_eq!(encode(""), "");
    }

    #[test]
    fn rfc3501_example() {
        // RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
        let name = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        assert_eq!(encode(name), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some(name)
        );
    }

    #[test]
    fn runs_and_surrogates() {
        for s in [
            "éàç",
            "Dossier été 2026",
            "Réponses/À traiter",
            "x😀y",
            "&é&",
            "Ω",
        ] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s), "{s}");
        }
        assert_eq!(encode("éà"), "&AOkA4A-");
    }

    #[test]
    fn invalid() {
        assert_eq!(decode("Trait&AOk"), None); // unterminated
        assert_eq!(decode("Trait&A!k-s"), None); // not base64
        assert_eq!(decode("Traités"), None); // raw 8-bit
        assert_eq!(decode("&AGE-"), None); // encoded ASCII 'a'
    }
}
