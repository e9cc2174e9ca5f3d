//! Any string as a blob name: parse errors, never panics; whatever parses
//! prints back to the same string.
#![no_main]

use clfs_fs::clfs::name::BlobName;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(name) = BlobName::parse(s) {
            assert_eq!(name.to_string(), s, "a parsed name prints differently");
        }
    }
});
