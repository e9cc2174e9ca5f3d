//! Paths inside a container's namespace: raw bytes, `/` for the root,
//! `/a/b` for entry `b` of directory `a`.
//!
//! Names in CLFS are raw bytes (not necessarily UTF-8), so paths are byte
//! strings everywhere; [`NsPath`]'s `Display` escapes what is not printable
//! UTF-8 for messages, and [`NsPath::relative_os`] gives the local-path form.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// A path in the container namespace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsPath(Vec<u8>);

/// Why a user-supplied path cannot name an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path {path:?}: {reason}")]
pub struct PathError {
    /// The path as given (lossy).
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl NsPath {
    /// The root, `/`.
    pub fn root() -> Self {
        NsPath(b"/".to_vec())
    }

    /// Parses a user-supplied path: components separated by `/`, empty
    /// and `.` components ignored, relative paths taken from the root.
    /// `..` is refused (it is ambiguous with hard links).
    pub fn parse(text: &[u8]) -> Result<Self, PathError> {
        let mut p = NsPath::root();
        for comp in text.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    return Err(PathError {
                        path: String::from_utf8_lossy(text).into_owned(),
                        reason: "'..' components are not supported",
                    })
                }
                name => p = p.join(name),
            }
        }
        Ok(p)
    }

    /// This path with `name` appended.
    pub fn join(&self, name: &[u8]) -> Self {
        let mut v = Vec::with_capacity(self.0.len() + 1 + name.len());
        v.extend_from_slice(&self.0);
        if !self.is_root() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        NsPath(v)
    }

    /// The raw bytes (`/` for the root).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.0 == b"/"
    }

    /// The components, root first (none for the root).
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// Number of components (0 for the root).
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The last component (empty for the root).
    pub fn file_name(&self) -> &[u8] {
        self.components().last().unwrap_or(b"")
    }

    /// The path relative to the root, as an `OsStr` to join onto a local
    /// directory (empty for the root).
    pub fn relative_os(&self) -> &OsStr {
        OsStr::from_bytes(self.0.strip_prefix(b"/").unwrap_or(&self.0))
    }
}

impl fmt::Display for NsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_bytes(&self.0))
    }
}

impl fmt::Debug for NsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NsPath({self})")
    }
}

/// Printable form of raw name bytes for messages: valid UTF-8 as is,
/// control characters and invalid bytes as `\xNN`, backslash doubled.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_parse_and_display() {
        let p = NsPath::root().join(b"a").join(b"b\xffc");
        assert_eq!(p.as_bytes(), b"/a/b\xffc");
        assert_eq!(p.to_string(), "/a/b\\xffc");
        assert_eq!(p.depth(), 2);
        assert_eq!(p.file_name(), b"b\xffc");
        assert_eq!(NsPath::parse(b"a//./b\xffc/").unwrap(), p);
        assert_eq!(NsPath::parse(b"/").unwrap(), NsPath::root());
        assert_eq!(NsPath::parse(b"").unwrap(), NsPath::root());
        assert!(NsPath::parse(b"a/../b").is_err());
        assert_eq!(p.relative_os(), OsStr::from_bytes(b"a/b\xffc"));
        assert_eq!(NsPath::root().relative_os(), OsStr::new(""));
        assert_eq!(escape_bytes(b"t\tab\\"), "t\\x09ab\\\\");
    }
}
