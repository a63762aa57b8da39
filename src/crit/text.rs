//! Byte encodings crit uses in JSON: base64 in 76-character lines, each
//! ending in a newline, and quoted-printable for unix socket names.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 with a newline after every 76 characters and at the end
/// (empty input gives an empty string).
pub fn base64_lines(data: &[u8]) -> String {
    let mut flat = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                flat.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                flat.push('=');
            }
        }
    }
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 + 1);
    for line in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Decode what [`base64_lines`] produces (newlines ignored).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let vals: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !vals.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(vals.len() / 4 * 3);
    for q in vals.chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &c in q {
            let v = match c {
                b'=' => {
                    pad += 1;
                    0
                }
                _ if pad > 0 => return None,
                _ => B64.iter().position(|&x| x == c)? as u32,
            };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad.min(2)]);
    }
    Some(out)
}

/// Quoted-printable (RFC 1521 text mode): `=XX` for `=`, control and
/// non-ASCII bytes and for a space or tab that ends a line; soft line
/// breaks keep lines at most 76 characters.
pub fn quopri(data: &[u8]) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    let emit = |out: &mut String, piece: &str, line_len: &mut usize| {
        if *line_len + piece.len() > 75 {
            out.push_str("=\n");
            *line_len = 0;
        }
        out.push_str(piece);
        *line_len += piece.len();
    };
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            out.push('\n');
            line_len = 0;
            continue;
        }
        let at_eol = matches!(data.get(i + 1), None | Some(b'\n'));
        let literal = (b == b' ' || b == b'\t') && !at_eol || (33..=126).contains(&b) && b != b'=';
        let piece = if literal { (b as char).to_string() } else { format!("={b:02X}") };
        emit(&mut out, &piece, &mut line_len);
    }
    out
}

/// Decode what [`quopri`] produces (`=XX` escapes, `=\n` soft breaks).
pub fn quopri_decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_python_encodebytes() {
        assert_eq!(base64_lines(b""), "");
        assert_eq!(base64_lines(b"pipe-data"), "cGlwZS1kYXRh\n");
        assert_eq!(base64_lines(b"sock-data"), "c29jay1kYXRh\n");
        assert_eq!(base64_lines(b"a"), "YQ==\n");
        assert_eq!(base64_lines(b"ab"), "YWI=\n");
        let long = vec![0u8; 60];
        let s = base64_lines(&long);
        assert_eq!(s.lines().next().unwrap().len(), 76);
        assert_eq!(s.lines().count(), 2);
        for d in [&b""[..], b"a", b"ab", b"abc", &long] {
            assert_eq!(base64_decode(&base64_lines(d)).unwrap(), d);
        }
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(quopri(b"/tmp/sock"), "/tmp/sock");
        assert_eq!(quopri(b"\0abstract"), "=00abstract");
        assert_eq!(quopri(b"a=b "), "a=3Db=20");
        for d in [&b"\0abstract"[..], b"a=b ", b"/tmp/x y"] {
            assert_eq!(quopri_decode(&quopri(d)).unwrap(), d);
        }
    }
}
