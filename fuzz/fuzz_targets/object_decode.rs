//! Any blob body: envelope, LZ4 frame walk and decompression, handle
//! stream, object. Must return an error, never panic; whatever decodes
//! must re-encode to the same stream, and decoding a stream by value must
//! decide exactly as decoding it by reference.
#![no_main]

use clfs_fs::clfs::envelope::{self, FramePolicy};
use clfs_fs::clfs::object::Object;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for policy in [FramePolicy::Clfs, FramePolicy::Any] {
        if let Ok(opened) = envelope::open(body, policy) {
            let borrowed = Object::decode(&opened.stream);
            if let Ok(obj) = &borrowed {
                let again = obj.encode_stream().expect("a decoded object re-encodes");
                assert_eq!(again, opened.stream, "re-encoding changed the stream");
            }
            assert!(
                Object::decode_owned(opened.stream) == borrowed,
                "decode_owned and decode disagree"
            );
        }
    }
});
