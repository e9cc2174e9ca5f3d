//! The two bodies the Azure backend parses from the network: a List Blobs
//! page and an error document. Any bytes must give a value or an error,
//! never a panic; a parsed page holds only names Azure could have sent.
#![no_main]

use clfs_fs::store::azure::{error_code_from_body, parse_list};
use clfs_fs::store::MAX_NAME_LEN;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = error_code_from_body(body);
    if let Ok(page) = parse_list(body) {
        for blob in &page.blobs {
            let name = blob.name.as_str();
            assert!(!name.is_empty(), "an empty blob name was accepted");
            assert!(
                name.len() <= MAX_NAME_LEN,
                "an over-long blob name was accepted"
            );
        }
    }
});
