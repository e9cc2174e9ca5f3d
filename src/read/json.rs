//! A small JSON writer producing exactly what Python's
//! `json.dumps(..., ensure_ascii=True, sort_keys=True, separators=(",", ":"))`
//! produces, with byte strings decoded like
//! `bytes.decode("utf-8", "surrogateescape")` (fixtures README §4).
//!
//! `serde_json` cannot represent the lone surrogates (`\udcXX`) that stand
//! for non-UTF-8 bytes in names, hence this writer.

/// A JSON value whose strings are raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A string given as raw bytes (surrogate-escaped if not UTF-8).
    Str(Vec<u8>),
    /// An array.
    Arr(Vec<Json>),
    /// An object; keys are sorted by code point when written.
    Obj(Vec<(Vec<u8>, Json)>),
}

impl Json {
    /// A string value from text.
    pub fn str(s: impl AsRef<[u8]>) -> Json {
        Json::Str(s.as_ref().to_vec())
    }

    /// Compact text with sorted keys.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// Compact text with sorted keys, as a `String` (always ASCII).
    pub fn to_text(&self) -> String {
        // Everything written is ASCII.
        String::from_utf8_lossy(&self.to_bytes()).into_owned()
    }

    /// Appends the compact text with sorted keys to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Json::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
            Json::Str(s) => write_str(out, s),
            Json::Arr(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out);
                }
                out.push(b']');
            }
            Json::Obj(pairs) => {
                out.push(b'{');
                for (i, (k, v)) in sorted_pairs(pairs).into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, k);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// Object pairs sorted the way Python sorts `str` keys (code points).
pub fn sorted_pairs(pairs: &[(Vec<u8>, Json)]) -> Vec<&(Vec<u8>, Json)> {
    let mut v: Vec<&(Vec<u8>, Json)> = pairs.iter().collect();
    v.sort_by_cached_key(|(k, _)| code_points(k));
    v
}

/// The code points of `bytes` decoded as UTF-8 with surrogate escapes:
/// every byte of an invalid sequence becomes U+DC00 + byte.
pub fn code_points(bytes: &[u8]) -> Vec<u32> {
    let mut v = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        v.extend(chunk.valid().chars().map(u32::from));
        v.extend(chunk.invalid().iter().map(|&b| 0xDC00 + u32::from(b)));
    }
    v
}

/// Number of code points (Python `len(str)` of the surrogate-escaped text).
pub fn code_point_len(bytes: &[u8]) -> usize {
    let mut n = 0;
    for chunk in bytes.utf8_chunks() {
        n += chunk.valid().chars().count() + chunk.invalid().len();
    }
    n
}

/// Writes `bytes` as a JSON string, ASCII only, Python's escapes.
pub fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for cp in code_points(bytes) {
        match cp {
            0x22 => out.extend_from_slice(b"\\\""),
            0x5C => out.extend_from_slice(b"\\\\"),
            0x0A => out.extend_from_slice(b"\\n"),
            0x0D => out.extend_from_slice(b"\\r"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            0x20..=0x7E => out.push(cp as u8),
            0x10000.. => {
                let v = cp - 0x10000;
                let hi = 0xD800 + (v >> 10);
                let lo = 0xDC00 + (v & 0x3FF);
                out.extend_from_slice(format!("\\u{hi:04x}\\u{lo:04x}").as_bytes());
            }
            _ => out.extend_from_slice(format!("\\u{cp:04x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_compatible_output() {
        let v = Json::Obj(vec![
            (
                b"b".to_vec(),
                Json::Arr(vec![Json::UInt(1), Json::Int(-2), Json::Null]),
            ),
            (
                b"a".to_vec(),
                Json::str("\u{fc}n/\u{76ee}\"\\\n\x7f\u{1F600}"),
            ),
            (b"c".to_vec(), Json::Str(b"bad_\xff_byte".to_vec())),
            (b"d".to_vec(), Json::Bool(true)),
        ]);
        assert_eq!(
            v.to_text(),
            r#"{"a":"\u00fcn/\u76ee\"\\\n\u007f\ud83d\ude00","b":[1,-2,null],"c":"bad_\udcff_byte","d":true}"#
        );
    }

    #[test]
    fn code_point_order_puts_escapes_before_private_use() {
        // U+E000 (bytes EE 80 80) sorts after an escaped 0xFF (U+DCFF),
        // although its first byte is smaller.
        assert!(code_points(b"\xff") < code_points("\u{e000}".as_bytes()));
        assert_eq!(code_point_len("\u{fc}x\u{76ee}".as_bytes()), 3);
        assert_eq!(code_point_len(b"a\xff\xfe"), 3);
    }
}
