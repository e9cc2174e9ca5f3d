//! Unit tests of the volume operations: every test checks the whole
//! namespace for consistency after its operations.

use std::io::{Read, Write};

use super::*;

const UID: u32 = 1000;

fn vol() -> (tempfile::TempDir, Volume) {
    let d = tempfile::tempdir().unwrap();
    let v = Volume::open_or_init(&d.path().join("vol")).unwrap();
    (d, v)
}

fn consistent(v: &Volume) {
    let p = v.check().unwrap();
    assert!(p.is_empty(), "inconsistent: {p:#?}");
}

fn names(v: &Volume, dir: u64) -> Vec<String> {
    let mut out = Vec::new();
    v.for_each_dirent(dir, None, |e| {
        out.push(String::from_utf8(e.name).unwrap());
        true
    })
    .unwrap();
    out
}

fn errno(r: VolumeResult<impl std::fmt::Debug>) -> i32 {
    r.unwrap_err().errno()
}

#[test]
fn init_makes_a_root_and_marker_and_refuses_twice() {
    let (d, v) = vol();
    let root = v.inode(ROOT_INO).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.fh, ROOT);
    assert_eq!(root.nlink, 2);
    assert_ne!(v.marker().containerid, 0);
    consistent(&v);
    drop(v);
    assert!(matches!(
        Volume::init(&d.path().join("vol")),
        Err(VolumeError::NotAVolume { .. })
    ));
    std::fs::create_dir(d.path().join("other")).unwrap();
    std::fs::write(d.path().join("other/x"), b"x").unwrap();
    assert!(matches!(
        Volume::open(&d.path().join("other")),
        Err(VolumeError::NotAVolume { .. })
    ));
}

#[test]
fn a_second_opener_is_refused_as_in_use() {
    let (d, v) = vol();
    let e = Volume::open(&d.path().join("vol")).unwrap_err();
    assert!(matches!(e, VolumeError::InUse { .. }), "{e}");
    assert!(e.to_string().contains("in use"));
    drop(v);
    Volume::open(&d.path().join("vol")).unwrap();
}

#[test]
fn create_write_and_reopen() {
    let (d, v) = vol();
    let dir = v.mkdir(ROOT_INO, b"d", 0o750, UID, UID).unwrap();
    let (f, mut file) = v
        .create_file(dir.ino, b"f", 0o640, (UID, UID), false)
        .unwrap();
    assert_eq!(f.ino, FIRST_INO + 1);
    assert_eq!(f.fh.as_filehandle().unwrap().seq(), f.ino);
    // A file inherits its parent's dmid as dmid_src (spec §2.3).
    assert_eq!(
        f.fh.as_filehandle().unwrap().dmid_src(),
        dir.fh.as_filehandle().unwrap().dmid_tgt()
    );
    file.write_all(b"hello").unwrap();
    let after = v.note_write(f.ino, 5).unwrap();
    assert_eq!(after.size, 5);
    assert!(after.change_seq > f.change_seq);
    assert_eq!(v.inode(ROOT_INO).unwrap().nlink, 3);
    assert_eq!(v.lookup(dir.ino, b"f").unwrap().ino, f.ino);
    assert_eq!(errno(v.lookup(dir.ino, b"g")), libc::ENOENT);
    assert_eq!(errno(v.lookup(f.ino, b"g")), libc::ENOTDIR);
    consistent(&v);
    drop(v);
    let v = Volume::open(&d.path().join("vol")).unwrap();
    let mut s = String::new();
    v.open_data(f.ino, false)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello");
    assert_eq!(v.inode(f.ino).unwrap().size, 5);
    assert_eq!(v.backptrs(f.ino).unwrap(), vec![(dir.ino, 1)]);
    // Numbers are never reused after a reopen.
    let g = v
        .mknod(ROOT_INO, b"p", libc::S_IFIFO | 0o644, 0, 0, 0)
        .unwrap();
    assert!(g.ino > f.ino);
    consistent(&v);
}

#[test]
fn names_are_checked() {
    let (_d, v) = vol();
    assert_eq!(errno(v.mkdir(ROOT_INO, b"", 0o755, 0, 0)), libc::EINVAL);
    assert_eq!(errno(v.mkdir(ROOT_INO, b"a/b", 0o755, 0, 0)), libc::EINVAL);
    assert_eq!(
        errno(v.mkdir(ROOT_INO, &[b'x'; 256], 0o755, 0, 0)),
        libc::ENAMETOOLONG
    );
    v.mkdir(ROOT_INO, &[b'x'; 255], 0o755, 0, 0).unwrap();
    assert_eq!(
        errno(v.mkdir(ROOT_INO, &[b'x'; 255], 0o755, 0, 0)),
        libc::EEXIST
    );
    consistent(&v);
}

#[test]
fn hard_links_count_and_unlink_deletes_the_last() {
    let (_d, v) = vol();
    let a = v.mkdir(ROOT_INO, b"a", 0o755, 0, 0).unwrap();
    let (f, _) = v.create_file(ROOT_INO, b"f", 0o644, (0, 0), false).unwrap();
    v.link(f.ino, a.ino, b"f1").unwrap();
    v.link(f.ino, a.ino, b"f2").unwrap();
    assert_eq!(v.inode(f.ino).unwrap().nlink, 3);
    let mut bp = v.backptrs(f.ino).unwrap();
    bp.sort();
    assert_eq!(bp, vec![(ROOT_INO, 1), (a.ino, 2)]);
    assert_eq!(errno(v.link(a.ino, ROOT_INO, b"a2")), libc::EPERM);
    consistent(&v);
    v.unlink(a.ino, b"f1").unwrap();
    v.unlink(ROOT_INO, b"f").unwrap();
    assert_eq!(v.inode(f.ino).unwrap().nlink, 1);
    assert_eq!(v.backptrs(f.ino).unwrap(), vec![(a.ino, 1)]);
    consistent(&v);
    assert!(v.data_path(f.ino).exists());
    v.unlink(a.ino, b"f2").unwrap();
    assert!(v.get(f.ino).unwrap().is_none());
    assert!(!v.data_path(f.ino).exists());
    let del = v.deleted().unwrap();
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].0, f.ino);
    assert_eq!(del[0].1.fh, f.fh);
    v.clear_deleted(&[f.ino]).unwrap();
    assert!(v.deleted().unwrap().is_empty());
    assert_eq!(errno(v.unlink(ROOT_INO, b"a")), libc::EISDIR);
    consistent(&v);
}

#[test]
fn rmdir_needs_an_empty_directory() {
    let (_d, v) = vol();
    let a = v.mkdir(ROOT_INO, b"a", 0o755, 0, 0).unwrap();
    let b = v.mkdir(a.ino, b"b", 0o755, 0, 0).unwrap();
    assert_eq!(v.inode(a.ino).unwrap().nlink, 3);
    assert_eq!(errno(v.rmdir(ROOT_INO, b"a")), libc::ENOTEMPTY);
    v.symlink(ROOT_INO, b"l", b"a", 0, 0).unwrap();
    assert_eq!(errno(v.rmdir(ROOT_INO, b"l")), libc::ENOTDIR);
    v.rmdir(a.ino, b"b").unwrap();
    assert!(v.get(b.ino).unwrap().is_none());
    assert_eq!(v.inode(a.ino).unwrap().nlink, 2);
    v.rmdir(ROOT_INO, b"a").unwrap();
    assert_eq!(v.inode(ROOT_INO).unwrap().nlink, 2);
    assert_eq!(names(&v, ROOT_INO), vec!["l"]);
    consistent(&v);
}

#[test]
fn rename_moves_replaces_and_refuses_loops() {
    let (_d, v) = vol();
    let a = v.mkdir(ROOT_INO, b"a", 0o755, 0, 0).unwrap();
    let b = v.mkdir(ROOT_INO, b"b", 0o755, 0, 0).unwrap();
    let (f, _) = v.create_file(a.ino, b"f", 0o644, (0, 0), false).unwrap();
    let (g, _) = v.create_file(b.ino, b"g", 0o644, (0, 0), false).unwrap();
    let before = v.inode(a.ino).unwrap().change_seq;
    // Over an existing file: the target is deleted.
    v.rename(a.ino, b"f", b.ino, b"g", RenameFlags::default())
        .unwrap();
    assert!(v.get(g.ino).unwrap().is_none());
    assert_eq!(v.lookup(b.ino, b"g").unwrap().ino, f.ino);
    assert!(v.inode(a.ino).unwrap().change_seq > before);
    assert_eq!(v.backptrs(f.ino).unwrap(), vec![(b.ino, 1)]);
    consistent(&v);
    // A directory into itself or below.
    let c = v.mkdir(a.ino, b"c", 0o755, 0, 0).unwrap();
    assert_eq!(
        errno(v.rename(ROOT_INO, b"a", c.ino, b"x", RenameFlags::default())),
        libc::EINVAL
    );
    assert_eq!(
        errno(v.rename(ROOT_INO, b"a", a.ino, b"x", RenameFlags::default())),
        libc::EINVAL
    );
    // A directory over a non-empty one, a file over a directory.
    assert_eq!(
        errno(v.rename(ROOT_INO, b"b", ROOT_INO, b"a", RenameFlags::default())),
        libc::ENOTEMPTY
    );
    assert_eq!(
        errno(v.rename(b.ino, b"g", ROOT_INO, b"a", RenameFlags::default())),
        libc::EISDIR
    );
    assert_eq!(
        errno(v.rename(ROOT_INO, b"a", b.ino, b"g", RenameFlags::default())),
        libc::ENOTDIR
    );
    // A directory moved to another parent: link counts follow.
    v.rename(a.ino, b"c", b.ino, b"c", RenameFlags::default())
        .unwrap();
    assert_eq!(v.inode(a.ino).unwrap().nlink, 2);
    assert_eq!(v.inode(b.ino).unwrap().nlink, 3);
    assert_eq!(v.dir_parent(c.ino).unwrap(), b.ino);
    consistent(&v);
    // Over an empty directory.
    v.rename(b.ino, b"c", ROOT_INO, b"a", RenameFlags::default())
        .unwrap();
    assert!(v.get(a.ino).unwrap().is_none());
    assert_eq!(v.inode(ROOT_INO).unwrap().nlink, 4);
    assert_eq!(names(&v, ROOT_INO), vec!["a", "b"]);
    consistent(&v);
}

#[test]
fn rename_noreplace_exchange_and_same_inode() {
    let (_d, v) = vol();
    let a = v.mkdir(ROOT_INO, b"a", 0o755, 0, 0).unwrap();
    let (f, _) = v.create_file(ROOT_INO, b"f", 0o644, (0, 0), false).unwrap();
    v.link(f.ino, ROOT_INO, b"h").unwrap();
    let nr = RenameFlags {
        noreplace: true,
        exchange: false,
    };
    assert_eq!(
        errno(v.rename(ROOT_INO, b"f", ROOT_INO, b"a", nr)),
        libc::EEXIST
    );
    v.rename(ROOT_INO, b"f", ROOT_INO, b"new", nr).unwrap();
    // Two names of one inode: nothing happens.
    v.rename(ROOT_INO, b"new", ROOT_INO, b"h", RenameFlags::default())
        .unwrap();
    assert_eq!(names(&v, ROOT_INO), vec!["a", "h", "new"]);
    consistent(&v);
    let x = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    v.rename(ROOT_INO, b"new", a.ino, b"missing", x)
        .unwrap_err();
    let (g, _) = v.create_file(a.ino, b"g", 0o644, (0, 0), false).unwrap();
    let sub = v.mkdir(a.ino, b"sub", 0o755, 0, 0).unwrap();
    v.rename(ROOT_INO, b"new", a.ino, b"sub", x).unwrap();
    assert_eq!(v.lookup(ROOT_INO, b"new").unwrap().ino, sub.ino);
    assert_eq!(v.lookup(a.ino, b"sub").unwrap().ino, f.ino);
    assert_eq!(v.dir_parent(sub.ino).unwrap(), ROOT_INO);
    assert_eq!(v.inode(a.ino).unwrap().nlink, 2);
    assert_eq!(v.inode(ROOT_INO).unwrap().nlink, 4);
    assert_eq!(v.inode(g.ino).unwrap().nlink, 1);
    consistent(&v);
}

#[test]
fn setattr_truncates_and_keeps_type_bits() {
    let (_d, v) = vol();
    let (f, mut file) = v.create_file(ROOT_INO, b"f", 0o644, (0, 0), false).unwrap();
    file.write_all(b"0123456789").unwrap();
    v.note_write(f.ino, 10).unwrap();
    let t = Timespec { sec: -5, nsec: 7 };
    let i = v
        .setattr(
            f.ino,
            SetAttr {
                mode: Some(0o4755),
                uid: Some(7),
                gid: Some(8),
                size: Some(4),
                mtime: Some(t),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(i.mode, libc::S_IFREG | 0o4755);
    assert_eq!((i.uid, i.gid, i.size, i.mtime), (7, 8, 4, t));
    assert_eq!(std::fs::metadata(v.data_path(f.ino)).unwrap().len(), 4);
    v.setattr(
        f.ino,
        SetAttr {
            size: Some(100),
            ..SetAttr::default()
        },
    )
    .unwrap();
    let mut data = Vec::new();
    v.open_data(f.ino, false)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    assert_eq!(&data[..4], b"0123");
    assert!(data[4..].iter().all(|&b| b == 0));
    let d = v.mkdir(ROOT_INO, b"d", 0o755, 0, 0).unwrap();
    assert_eq!(
        errno(v.setattr(
            d.ino,
            SetAttr {
                size: Some(0),
                ..SetAttr::default()
            }
        )),
        libc::EISDIR
    );
    consistent(&v);
}

#[test]
fn unlinked_while_open_lives_until_release_or_reopen() {
    let (d, v) = vol();
    let (f, _) = v.create_file(ROOT_INO, b"f", 0o644, (0, 0), false).unwrap();
    v.open_ref(f.ino);
    v.unlink(ROOT_INO, b"f").unwrap();
    let i = v.inode(f.ino).unwrap();
    assert_eq!(i.nlink, 0);
    assert!(v.data_path(f.ino).exists());
    consistent(&v);
    v.release_ref(f.ino).unwrap();
    assert!(v.get(f.ino).unwrap().is_none());
    assert!(!v.data_path(f.ino).exists());
    consistent(&v);
    // A crash while open: the next open reaps it.
    let (g, _) = v.create_file(ROOT_INO, b"g", 0o644, (0, 0), false).unwrap();
    v.open_ref(g.ino);
    v.unlink(ROOT_INO, b"g").unwrap();
    drop(v);
    let v = Volume::open(&d.path().join("vol")).unwrap();
    assert!(v.get(g.ino).unwrap().is_none());
    assert!(v.deleted().unwrap().iter().any(|(ino, _)| *ino == g.ino));
    consistent(&v);
}

#[test]
fn devices_symlinks_and_readdir_order() {
    let (_d, v) = vol();
    let c = v
        .mknod(ROOT_INO, b"c", libc::S_IFCHR | 0o600, 0x0105, 0, 0)
        .unwrap();
    assert_eq!(c.rdev, 0x0105);
    let l = v.symlink(ROOT_INO, b"l", b"target/x", 0, 0).unwrap();
    assert_eq!((l.size, l.target.as_slice()), (8, &b"target/x"[..]));
    assert_eq!(
        errno(v.mknod(ROOT_INO, b"x", libc::S_IFDIR | 0o755, 0, 0, 0)),
        libc::EINVAL
    );
    for n in ["zz", "aa", "mm"] {
        v.mknod(ROOT_INO, n.as_bytes(), libc::S_IFIFO | 0o644, 0, 0, 0)
            .unwrap();
    }
    assert_eq!(names(&v, ROOT_INO), vec!["aa", "c", "l", "mm", "zz"]);
    let mut after = Vec::new();
    v.for_each_dirent(ROOT_INO, Some(b"c"), |e| {
        after.push(e.name);
        after.len() < 2
    })
    .unwrap();
    assert_eq!(after, vec![b"l".to_vec(), b"mm".to_vec()]);
    consistent(&v);
}

#[test]
fn change_seq_rises_for_every_touched_inode() {
    let (_d, v) = vol();
    let start = v.change_counter();
    let a = v.mkdir(ROOT_INO, b"a", 0o755, 0, 0).unwrap();
    assert_eq!(a.change_seq, start + 1);
    assert_eq!(v.inode(ROOT_INO).unwrap().change_seq, start + 1);
    let (f, _) = v.create_file(a.ino, b"f", 0o644, (0, 0), false).unwrap();
    let root_seq = v.inode(ROOT_INO).unwrap().change_seq;
    v.setattr(
        f.ino,
        SetAttr {
            mode: Some(0o600),
            ..SetAttr::default()
        },
    )
    .unwrap();
    assert_eq!(v.inode(ROOT_INO).unwrap().change_seq, root_seq);
    assert_eq!(v.inode(f.ino).unwrap().change_seq, v.change_counter());
    v.rename(a.ino, b"f", ROOT_INO, b"f", RenameFlags::default())
        .unwrap();
    let n = v.change_counter();
    for ino in [ROOT_INO, a.ino, f.ino] {
        assert_eq!(v.inode(ino).unwrap().change_seq, n);
    }
}

/// A random sequence of operations keeps the namespace consistent, also
/// across a reopen.
#[test]
fn random_operations_stay_consistent() {
    use rand::{Rng, SeedableRng};
    let (d, mut v) = vol();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let names = [b"a".as_slice(), b"b", b"c", b"d"];
    for round in 0..1500 {
        let mut dirs = vec![ROOT_INO];
        v.for_each_inode(|i| {
            if i.is_dir() && i.ino != ROOT_INO {
                dirs.push(i.ino);
            }
            true
        })
        .unwrap();
        let p = dirs[rng.random_range(0..dirs.len())];
        let q = dirs[rng.random_range(0..dirs.len())];
        let n = names[rng.random_range(0..names.len())];
        let m = names[rng.random_range(0..names.len())];
        let _ = match rng.random_range(0..7) {
            0 => v.mkdir(p, n, 0o755, 0, 0).map(drop),
            1 => v.create_file(p, n, 0o644, (0, 0), false).map(drop),
            2 => v.unlink(p, n),
            3 => v.rmdir(p, n),
            4 => v.lookup(p, n).and_then(|i| v.link(i.ino, q, m)).map(drop),
            5 => v.rename(p, n, q, m, RenameFlags::default()),
            _ => v.rename(
                p,
                n,
                q,
                m,
                RenameFlags {
                    noreplace: false,
                    exchange: true,
                },
            ),
        };
        if round % 100 == 0 {
            consistent(&v);
        }
        if round % 500 == 499 {
            drop(v);
            v = Volume::open(&d.path().join("vol")).unwrap();
            consistent(&v);
        }
    }
    consistent(&v);
}

#[test]
fn data_written_directly_is_refreshed_and_recovered() {
    let (d, v) = vol();
    let (f, mut file) = v.create_file(ROOT_INO, b"f", 0o644, (0, 0), true).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    file.write_all(b"written behind the volume").unwrap();
    let md = std::fs::metadata(v.data_path(f.ino)).unwrap();
    let i = v.refresh_from_data(f.ino, &md, true, false).unwrap();
    assert_eq!(i.size, 25);
    assert!(i.mtime > f.mtime && i.change_seq > f.change_seq);
    // Unchanged data: no new change, and the times stay.
    let again = v.refresh_from_data(f.ino, &md, false, false).unwrap();
    assert_eq!(again.change_seq, i.change_seq);
    assert_eq!((again.mtime, again.ctime), (i.mtime, i.ctime));
    // The last writer closes without a change seen: a new change (the next
    // sync sends the file) with the times as they were.
    let closed = v.refresh_from_data(f.ino, &md, false, true).unwrap();
    assert!(closed.change_seq > i.change_seq);
    assert_eq!((closed.mtime, closed.ctime), (i.mtime, i.ctime));
    v.mark_open(f.ino).unwrap();
    // More data, then a crash: the next open takes it in.
    std::thread::sleep(std::time::Duration::from_millis(20));
    file.write_all(b"!!").unwrap();
    drop(v);
    let v = Volume::open(&d.path().join("vol")).unwrap();
    assert_eq!(v.inode(f.ino).unwrap().size, 27);
    consistent(&v);
}

#[test]
fn a_mark_of_a_vanished_inode_is_dropped_at_open() {
    let (d, v) = vol();
    let (f, _) = v.create_file(ROOT_INO, b"f", 0o644, (0, 0), false).unwrap();
    let dir = v.mkdir(ROOT_INO, b"d", 0o755, 0, 0).unwrap();
    // A mark left on a deleted file and on a directory must not stop the
    // volume from opening.
    v.unlink(ROOT_INO, b"f").unwrap();
    v.mark_open(f.ino).unwrap();
    v.mark_open(dir.ino).unwrap();
    drop(v);
    let v = Volume::open(&d.path().join("vol")).unwrap();
    consistent(&v);
    drop(v);
    Volume::open(&d.path().join("vol")).unwrap();
}

#[test]
fn a_new_file_starts_empty_over_a_data_file_left_by_a_lost_creation() {
    let (d, v) = vol();
    let next = v.lock_state().next_ino;
    // A crash lost the record of a creation (its WAL write was not synced)
    // but not the data file written through the handle.
    std::fs::write(v.data_path(next), b"bytes of a file the crash lost").unwrap();
    drop(v);
    let v = Volume::open(&d.path().join("vol")).unwrap();
    let (f, mut file) = v.create_file(ROOT_INO, b"f", 0o644, (0, 0), true).unwrap();
    assert_eq!(f.ino, next);
    file.write_all(b"new").unwrap();
    assert_eq!(std::fs::read(v.data_path(f.ino)).unwrap(), b"new");
    consistent(&v);
}

#[test]
fn spare_data_files_are_made_ahead_used_and_cleaned_up() {
    let (_d, v) = vol();
    let v = std::sync::Arc::new(v);
    let next = v.lock_state().next_ino;
    v.start_spares();
    let wait_for = |ino: u64, present: bool| {
        let t0 = std::time::Instant::now();
        while v.data_path(ino).exists() != present {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "data file of {ino} never became present={present}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    wait_for(next, true);
    wait_for(next + 10, true);
    // A directory takes the next number: its spare file goes (at once, or
    // when the batch it is in is finished).
    let d = v.mkdir(ROOT_INO, b"d", 0o755, 0, 0).unwrap();
    assert_eq!(d.ino, next);
    wait_for(d.ino, false);
    // A regular file uses its spare (empty, written through the handle).
    let (f, mut file) = v.create_file(ROOT_INO, b"f", 0o644, (0, 0), false).unwrap();
    assert_eq!(f.ino, next + 1);
    file.write_all(b"abc").unwrap();
    assert_eq!(std::fs::read(v.data_path(f.ino)).unwrap(), b"abc");
    // Many creations: the thread keeps up, or creation makes the file.
    for i in 0..600u32 {
        let name = format!("n{i}");
        if i % 7 == 0 {
            v.symlink(ROOT_INO, name.as_bytes(), b"t", 0, 0).unwrap();
        } else {
            v.create_file(ROOT_INO, name.as_bytes(), 0o644, (0, 0), false)
                .unwrap();
        }
    }
    v.stop_spares();
    consistent(&v);
    // After the stop, no data file is left for a number not handed out,
    // and none beside a non-regular inode.
    let after = v.lock_state().next_ino;
    for ino in after..after + 300 {
        assert!(!v.data_path(ino).exists(), "spare {ino} left behind");
    }
    for ino in next..after {
        if let Ok(i) = v.inode(ino) {
            assert_eq!(
                v.data_path(ino).exists(),
                i.ftype == Ftype::Reg,
                "inode {ino} ({:?})",
                i.ftype
            );
        }
    }
}
