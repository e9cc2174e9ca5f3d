//! A full consistency check of a volume's namespace: what a crash must
//! never break. Used by the tests and available to `sync`.

use std::collections::HashMap;

use super::{keys, Volume, VolumeResult, ROOT_INO};
use crate::clfs::id::Ftype;

impl Volume {
    /// Checks every invariant of the namespace and returns the violations
    /// (empty when consistent): entries name existing inodes of the stated
    /// type, back-pointer counts equal the entries, link counts equal the
    /// names (directories: 2 + subdirectories), every linked inode is
    /// reachable by a name, every unlinked one is an orphan, counters are
    /// above every inode number and `change_seq`.
    pub fn check(&self) -> VolumeResult<Vec<String>> {
        let mut problems = Vec::new();
        let mut inodes = HashMap::new();
        self.for_each_inode(|i| {
            inodes.insert(i.ino, i);
            true
        })?;
        let mut names: HashMap<u64, u32> = HashMap::new();
        let mut subdirs: HashMap<u64, u32> = HashMap::new();
        let mut per_parent: HashMap<(u64, u64), u32> = HashMap::new();
        let cf = self.cf(keys::CF_DIRENT)?;
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            let (Some((parent, name)), Some((child, t))) =
                (keys::parse_dirent_key(&k), keys::parse_dirent_value(&v))
            else {
                problems.push(format!("malformed entry {}", hex::encode(&k)));
                continue;
            };
            let shown = String::from_utf8_lossy(name);
            match inodes.get(&parent) {
                Some(p) if p.is_dir() => {}
                _ => problems.push(format!(
                    "entry {shown:?} in {parent}, which is no directory"
                )),
            }
            match inodes.get(&child) {
                None => problems.push(format!(
                    "entry {shown:?} in {parent} names missing inode {child}"
                )),
                Some(c) if c.ftype as u8 != t => problems.push(format!(
                    "entry {shown:?} in {parent}: type {t} but inode {child} is {:?}",
                    c.ftype
                )),
                Some(c) => {
                    if c.is_dir() {
                        *subdirs.entry(parent).or_default() += 1;
                    }
                }
            }
            *names.entry(child).or_default() += 1;
            *per_parent.entry((child, parent)).or_default() += 1;
        }
        let cf = self.cf(keys::CF_BACKPTR)?;
        let mut seen_bp = 0usize;
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            seen_bp += 1;
            let (Some((child, parent)), Some(n)) =
                (keys::parse_backptr_key(&k), keys::parse_u32(&v))
            else {
                problems.push(format!("malformed back-pointer {}", hex::encode(&k)));
                continue;
            };
            let want = per_parent.get(&(child, parent)).copied().unwrap_or(0);
            if want != n {
                problems.push(format!(
                    "back-pointer {child} → {parent} says {n}, entries say {want}"
                ));
            }
        }
        if seen_bp != per_parent.len() {
            problems.push(format!(
                "{} back-pointers for {} (child, parent) pairs with entries",
                seen_bp,
                per_parent.len()
            ));
        }
        let mut orphans = std::collections::HashSet::new();
        let cf = self.cf(keys::CF_ORPHAN)?;
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, _) = item.map_err(|e| self.db_err(e))?;
            if let Some(ino) = keys::parse_ino_key(&k) {
                orphans.insert(ino);
            }
        }
        let (next_ino, counter) = (self.next_ino(), self.change_counter());
        match inodes.get(&ROOT_INO) {
            Some(r) if r.ftype == Ftype::Dir => {}
            _ => problems.push("the root inode is missing or not a directory".into()),
        }
        for (ino, i) in &inodes {
            let n = names.get(ino).copied().unwrap_or(0);
            let want = if i.is_dir() {
                if n == 0 && *ino != ROOT_INO {
                    0
                } else {
                    2 + subdirs.get(ino).copied().unwrap_or(0)
                }
            } else {
                n
            };
            if i.nlink != want {
                problems.push(format!(
                    "inode {ino} has nlink {} but {want} by its entries",
                    i.nlink
                ));
            }
            if i.is_dir() && n > 1 {
                problems.push(format!("directory {ino} has {n} names"));
            }
            if *ino != ROOT_INO && n == 0 && !orphans.contains(ino) {
                problems.push(format!("inode {ino} has no name and is no orphan"));
            }
            if *ino != ROOT_INO && *ino >= next_ino {
                problems.push(format!(
                    "inode {ino} is not below the next inode number {next_ino}"
                ));
            }
            if i.change_seq > counter {
                problems.push(format!(
                    "inode {ino} change_seq {} above the counter {counter}",
                    i.change_seq
                ));
            }
            if *ino != ROOT_INO && i.fh.as_filehandle().map(|f| f.seq()) != Some(*ino) {
                problems.push(format!(
                    "inode {ino}: filehandle {} does not carry its number",
                    i.fh
                ));
            }
        }
        Ok(problems)
    }
}
