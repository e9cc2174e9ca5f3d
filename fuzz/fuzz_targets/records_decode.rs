//! Any bytes as a RocksDB record (the first byte picks which: a staging
//! volume's inode or deletion, a load's object record, a sync's inode
//! record): decoding fails cleanly, never panics, and whatever decodes
//! encodes to bytes that decode to the same record.
#![no_main]

use clfs_fs::records::{load::ObjRecord, sync::SyncedInode, volume};
use libfuzzer_sys::fuzz_target;

macro_rules! round_trip {
    ($t:ty, $b:expr) => {
        if let Ok(r) = <$t>::decode($b) {
            let again = <$t>::decode(&r.encode()).expect("an encoded record decodes");
            assert_eq!(again, r, "a record changes through encode and decode");
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, b)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => round_trip!(volume::Inode, b),
        1 => round_trip!(volume::Deleted, b),
        2 => round_trip!(ObjRecord, b),
        _ => round_trip!(SyncedInode, b),
    }
});
