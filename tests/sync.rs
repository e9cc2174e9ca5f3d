//! `clfs-fs sync`: a staging volume filled through the volume API with the
//! `small` fixture tree, synced into a local container and into Azurite,
//! verified and exported (the export must equal the source); then changed
//! (modify, append, truncate, rename, delete, hard link, chmod, new
//! directory and file) in the source and the volume alike and synced
//! again: the export equals the new tree and the second sync writes
//! objects in proportion to the change. Also: a mounted (in use) volume is
//! refused, another container is refused, and syncs killed with SIGKILL at
//! many points end, once rerun, in a clean container.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use clfs_fs::clfs::layout::data_segment_count;
use clfs_fs::clfs::vattr::ClfsTime;
use clfs_fs::read::verify::{verify, VerifyOptions};
use clfs_fs::store::{self, BlobStore, StoreOptions};
use clfs_fs::volume::{RenameFlags, SetAttr, Timespec, Volume, ROOT_INO};

use common::azurite::Azurite;
use common::mount::{bin, Mounted};
use common::read::{open_local, runtime};
use common::tree::small_tree;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---------------------------------------------------------------------
// Filling a volume through its API (what `cp -a` into a mount does)

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: nsec as u32,
    }
}

/// Owner, mode (not for symlinks) and times of `md` onto `ino`.
fn set_attrs(vol: &Volume, ino: u64, md: &fs::Metadata) {
    vol.setattr(
        ino,
        SetAttr {
            mode: (!md.file_type().is_symlink()).then_some(md.mode() & 0o7777),
            uid: Some(md.uid()),
            gid: Some(md.gid()),
            atime: Some(ts(md.atime(), md.atime_nsec())),
            mtime: Some(ts(md.mtime(), md.mtime_nsec())),
            ..SetAttr::default()
        },
    )
    .expect("setattr");
}

fn write_file(vol: &Volume, parent: u64, name: &[u8], md: &fs::Metadata, data: &[u8]) -> u64 {
    let (ino, mut f) = vol
        .create_file(
            parent,
            name,
            md.mode() & 0o7777,
            (md.uid(), md.gid()),
            false,
        )
        .expect("create");
    f.write_all(data).expect("write data file");
    vol.note_write(ino.ino, data.len() as u64)
        .expect("note_write");
    ino.ino
}

/// Copies the tree `src` into directory `dir` of the volume.
fn copy_dir(vol: &Volume, src: &Path, dir: u64, links: &mut HashMap<(u64, u64), u64>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(src)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let md = fs::symlink_metadata(&path).expect("lstat");
        let name = path.file_name().expect("name").as_bytes();
        let key = (md.dev(), md.ino());
        if !md.is_dir() && md.nlink() > 1 {
            if let Some(&ino) = links.get(&key) {
                vol.link(ino, dir, name).expect("link");
                continue;
            }
        }
        let t = md.file_type();
        let ino = if t.is_dir() {
            let ino = vol
                .mkdir(dir, name, md.mode() & 0o7777, md.uid(), md.gid())
                .expect("mkdir")
                .ino;
            copy_dir(vol, &path, ino, links);
            ino
        } else if t.is_file() {
            write_file(vol, dir, name, &md, &fs::read(&path).expect("read"))
        } else if t.is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            vol.symlink(dir, name, target.as_os_str().as_bytes(), md.uid(), md.gid())
                .expect("symlink")
                .ino
        } else {
            vol.mknod(dir, name, md.mode(), md.rdev(), md.uid(), md.gid())
                .expect("mknod")
                .ino
        };
        if md.nlink() > 1 && !md.is_dir() {
            links.insert(key, ino);
        }
        set_attrs(vol, ino, &md);
    }
}

/// A new volume at `vol_dir` holding a copy of `src`.
fn volume_from(src: &Path, vol_dir: &Path) {
    Volume::init(vol_dir).expect("init volume");
    let vol = Volume::open(vol_dir).expect("open volume");
    copy_dir(&vol, src, ROOT_INO, &mut HashMap::new());
    set_attrs(
        &vol,
        ROOT_INO,
        &fs::symlink_metadata(src).expect("lstat root"),
    );
    assert!(vol.check().expect("check").is_empty());
}

fn resolve(vol: &Volume, path: &str) -> u64 {
    let mut ino = ROOT_INO;
    for c in path.split('/').filter(|c| !c.is_empty()) {
        ino = vol.lookup(ino, c.as_bytes()).expect("lookup").ino;
    }
    ino
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

// ---------------------------------------------------------------------
// Comparing trees

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// path → what must survive a round trip: type, permissions, owner,
/// mtime and atime (through CLFS's double conversion when `source`),
/// contents, symlink target, device number, and the other names of a
/// hard-linked inode.
fn snapshot(root: &Path, source: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut groups: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    let mut all = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("read_dir") {
            let p = e.expect("entry").path();
            if fs::symlink_metadata(&p).expect("lstat").is_dir() {
                stack.push(p.clone());
            }
            all.push(p);
        }
    }
    all.push(root.to_path_buf());
    for p in &all {
        let md = fs::symlink_metadata(p).expect("lstat");
        let rel = format!(
            "/{}",
            text(p.strip_prefix(root).expect("inside").as_os_str().as_bytes())
        );
        let time = |sec: i64, nsec: i64| {
            if source {
                let t = ClfsTime::from_stat(sec, nsec as u32).expect("time fits");
                format!("{}.{:09}", t.sec, t.nsec)
            } else {
                format!("{sec}.{nsec:09}")
            }
        };
        let t = md.file_type();
        let what = if t.is_dir() {
            "dir".to_string()
        } else if t.is_file() {
            format!("reg {} {}", md.size(), sha(&fs::read(p).expect("read")))
        } else if t.is_symlink() {
            format!(
                "lnk {}",
                text(fs::read_link(p).expect("readlink").as_os_str().as_bytes())
            )
        } else {
            format!("special {:o} {}", md.mode() & 0o170000, md.rdev())
        };
        let mut desc = format!(
            "{what} mode {:o} owner {}:{} mtime {}",
            if t.is_symlink() {
                0
            } else {
                md.mode() & 0o7777
            },
            md.uid(),
            md.gid(),
            time(md.mtime(), md.mtime_nsec()),
        );
        if !t.is_symlink() {
            desc.push_str(&format!(" atime {}", time(md.atime(), md.atime_nsec())));
        }
        if !t.is_dir() && md.nlink() > 1 {
            groups
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
        out.insert(rel, desc);
    }
    for names in groups.values_mut() {
        names.sort();
        for n in names.iter() {
            if let Some(d) = out.get_mut(n) {
                d.push_str(&format!(" links {names:?}"));
            }
        }
    }
    out
}

fn assert_same_tree(label: &str, want: &Path, got: &Path) {
    let (w, g) = (snapshot(want, true), snapshot(got, false));
    let missing: Vec<_> = w.keys().filter(|k| !g.contains_key(*k)).collect();
    let extra: Vec<_> = g.keys().filter(|k| !w.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "{label}: missing in the export: {missing:?}"
    );
    assert!(extra.is_empty(), "{label}: extra in the export: {extra:?}");
    for (k, v) in &w {
        assert_eq!(&g[k], v, "{label}: {k}");
    }
}

// ---------------------------------------------------------------------
// Running the commands

fn sync_cmd(vol: &Path, container: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("sync")
        .arg(vol)
        .arg(container)
        .args(["--output-type", "json"])
        .args(extra);
    c
}

/// Runs a sync that must succeed; returns its final JSON report.
fn sync_ok(vol: &Path, container: &str) -> serde_json::Value {
    let out = sync_cmd(vol, container, &[]).output().expect("run sync");
    assert!(
        out.status.success(),
        "sync failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    final_report(&out)
}

fn final_report(out: &Output) -> serde_json::Value {
    let line = text(&out.stdout)
        .lines()
        .rev()
        .find(|l| l.contains("\"final\""))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no final report in {}", text(&out.stdout)));
    serde_json::from_str(&line).expect("JSON report")
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Verifies the container: no error, and no warning (nothing superseded
/// or unreachable left behind).
fn verify_clean(label: &str, store: Arc<dyn BlobStore>) -> u64 {
    let report = runtime()
        .block_on(verify(store, &VerifyOptions::default()))
        .expect("verify runs");
    let problems: Vec<String> = report.problems.iter().map(|p| format!("{p:?}")).collect();
    assert!(report.finished, "{label}: root not published");
    assert!(report.ok(), "{label}: verify errors: {problems:#?}");
    assert_eq!(
        report.warnings, 0,
        "{label}: verify warnings: {problems:#?}"
    );
    report.stats.blobs
}

fn export_to(container: &str, dest: &Path) {
    let out = Command::new(bin())
        .arg("export")
        .arg(container)
        .arg(dest)
        .output()
        .expect("run export");
    assert!(
        out.status.success(),
        "export failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn copy_tree(src: &Path, dest: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dest)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a failed");
}

// ---------------------------------------------------------------------
// The changes

/// What the changes rewrite: (inodes written, objects written, inodes
/// deleted, objects deleted), from the sizes before and after.
struct Expected {
    inodes: u64,
    objects: u64,
    deleted_inodes: u64,
    deleted_objects: u64,
}

fn file_objects(size: u64) -> u64 {
    1 + data_segment_count(size)
}

/// The changes, named in the `small` tree.
struct Plan {
    modified: &'static str,
    appended: &'static str,
    appended_size: u64,
    truncated: &'static str,
    renamed: (&'static str, &'static str),
    deleted: String,
    chmoded: String,
    unlinked: &'static str,
    still_linked: &'static str,
    new_link: &'static str,
}

const PATCH: [u8; 1000] = [0xA5; 1000];
const TAIL: [u8; 5000] = [b'z'; 5000];

impl Plan {
    fn new(src: &Path) -> Self {
        let first_file = |dir: &str, not: &[&str]| -> String {
            let mut names: Vec<String> = fs::read_dir(src.join(dir))
                .expect("read_dir")
                .map(|e| e.expect("entry"))
                .filter(|e| e.file_type().expect("type").is_file())
                .map(|e| text(e.file_name().as_bytes()))
                .filter(|n| !not.contains(&n.as_str()))
                .collect();
            names.sort();
            format!("{dir}/{}", names[0])
        };
        let deleted = first_file("sizes", &["one_byte.bin"]);
        let chmoded = first_file("sizes", &["one_byte.bin", split(&deleted).1]);
        let appended = "data/text_9MiB_plus_5.txt";
        Plan {
            modified: "data/random_300KiB.bin",
            appended,
            appended_size: fs::symlink_metadata(src.join(appended))
                .expect("lstat")
                .size(),
            truncated: "data/sparse_24MiB.bin",
            renamed: ("sizes/one_byte.bin", "data/one_byte_moved.bin"),
            deleted,
            chmoded,
            unlinked: "hardlinks/b/two_2",
            still_linked: "hardlinks/b/two_1",
            new_link: "hardlinks/a/new_link.bin",
        }
    }

    /// Files and directories whose inode the changes rewrite.
    fn touched(&self) -> (Vec<&str>, Vec<&str>) {
        (
            vec![
                self.modified,
                self.appended,
                self.truncated,
                self.renamed.1,
                self.still_linked,
                &self.chmoded,
                "new_dir/hello.txt",
            ],
            vec!["data", "sizes", "hardlinks/a", "hardlinks/b", "new_dir", ""],
        )
    }

    /// Makes the changes with ordinary file-system calls under `root` (the
    /// source copy, or a mount of the volume).
    fn apply_with_tools(&self, root: &Path) {
        fs::OpenOptions::new()
            .write(true)
            .open(root.join(self.modified))
            .and_then(|f| f.write_all_at(&PATCH, 100_000))
            .expect("modify");
        fs::OpenOptions::new()
            .append(true)
            .open(root.join(self.appended))
            .and_then(|mut f| f.write_all(&TAIL))
            .expect("append");
        fs::OpenOptions::new()
            .write(true)
            .open(root.join(self.truncated))
            .and_then(|f| f.set_len(1_000_000))
            .expect("truncate");
        fs::rename(root.join(self.renamed.0), root.join(self.renamed.1)).expect("rename");
        for p in [self.deleted.as_str(), self.unlinked] {
            fs::remove_file(root.join(p)).expect("unlink");
        }
        fs::hard_link(root.join(self.modified), root.join(self.new_link)).expect("link");
        fs::set_permissions(root.join(&self.chmoded), fs::Permissions::from_mode(0o600))
            .expect("chmod");
        fs::create_dir(root.join("new_dir")).expect("mkdir");
        fs::write(root.join("new_dir/hello.txt"), b"hello\n").expect("write");
    }

    /// Gives every touched path under `to` the times of the same path
    /// under `from` (the new ones get fixed times with atimes in the
    /// future, as in the fixture, so reading them changes nothing).
    fn copy_times(&self, from: &Path, to: &Path) {
        let times = fs::FileTimes::new()
            .set_accessed(std::time::UNIX_EPOCH + Duration::from_secs(4_100_000_000))
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        for p in ["new_dir/hello.txt", "new_dir"] {
            fs::File::open(from.join(p))
                .and_then(|f| f.set_times(times))
                .expect("set times");
        }
        let (files, dirs) = self.touched();
        for p in files.iter().chain(dirs.iter()) {
            let md = fs::symlink_metadata(from.join(p)).expect("lstat");
            let t = fs::FileTimes::new()
                .set_accessed(md.accessed().expect("atime"))
                .set_modified(md.modified().expect("mtime"));
            fs::File::open(to.join(p))
                .and_then(|f| f.set_times(t))
                .expect("copy times");
        }
    }

    /// The same changes through the volume API.
    fn apply_to_volume(&self, vol: &Volume) {
        let ino = resolve(vol, self.modified);
        vol.open_data(ino, true)
            .expect("open data file")
            .write_all_at(&PATCH, 100_000)
            .expect("modify volume");
        vol.note_write(ino, 101_000).expect("note_write");
        let ino = resolve(vol, self.appended);
        vol.open_data(ino, true)
            .expect("open data file")
            .write_all_at(&TAIL, self.appended_size)
            .expect("append volume");
        vol.note_write(ino, self.appended_size + 5000)
            .expect("note_write");
        vol.setattr(
            resolve(vol, self.truncated),
            SetAttr {
                size: Some(1_000_000),
                ..SetAttr::default()
            },
        )
        .expect("truncate volume");
        let (from_dir, from_name) = split(self.renamed.0);
        let (to_dir, to_name) = split(self.renamed.1);
        vol.rename(
            resolve(vol, from_dir),
            from_name.as_bytes(),
            resolve(vol, to_dir),
            to_name.as_bytes(),
            RenameFlags::default(),
        )
        .expect("rename volume");
        for p in [self.deleted.as_str(), self.unlinked] {
            let (d, name) = split(p);
            vol.unlink(resolve(vol, d), name.as_bytes())
                .expect("unlink volume");
        }
        let (d, name) = split(self.new_link);
        vol.link(
            resolve(vol, self.modified),
            resolve(vol, d),
            name.as_bytes(),
        )
        .expect("link volume");
        vol.setattr(
            resolve(vol, &self.chmoded),
            SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            },
        )
        .expect("chmod volume");
        let d = vol
            .mkdir(ROOT_INO, b"new_dir", 0o755, 0, 0)
            .expect("mkdir volume")
            .ino;
        let md = fs::symlink_metadata(small_tree().join("data")).expect("lstat");
        write_file(vol, d, b"hello.txt", &md, b"hello\n");
    }
}

/// Applies the same changes to the source copy `src` and to the volume;
/// returns what the next sync must write and delete.
fn change_both(src: &Path, vol_dir: &Path) -> Expected {
    let vol = Volume::open(vol_dir).expect("open volume");
    let plan = Plan::new(src);
    let size = |p: &str| fs::symlink_metadata(src.join(p)).expect("lstat").size();
    let mut e = Expected {
        inodes: 0,
        objects: 0,
        deleted_inodes: 1,
        deleted_objects: file_objects(size(&plan.deleted)),
    };
    // Before: what the rewritten files held.
    for p in [
        plan.modified,
        plan.appended,
        plan.truncated,
        plan.renamed.0,
        plan.still_linked,
        &plan.chmoded,
    ] {
        e.deleted_objects += file_objects(size(p));
    }
    plan.apply_with_tools(src);
    plan.apply_to_volume(&vol);
    // Fixed times for the new paths in the source, then the volume takes
    // the source's attributes of everything touched.
    plan.copy_times(src, src);
    let (files, dirs) = plan.touched();
    for p in files.iter().chain(dirs.iter()) {
        let md = fs::symlink_metadata(src.join(p)).expect("lstat");
        set_attrs(&vol, resolve(&vol, p), &md);
        e.inodes += 1;
        e.objects += if md.is_dir() {
            1
        } else {
            file_objects(md.size())
        };
    }
    // Every rewritten inode but the two new ones supersedes its old blob
    // (directories: the inode only).
    e.deleted_objects += (dirs.len() - 1) as u64;
    assert!(vol.check().expect("check").is_empty());
    e
}

// ---------------------------------------------------------------------
// The tests

/// The whole round trip into the container at `url` (created if local).
fn round_trip(label: &str, url: &str, open: &dyn Fn() -> Arc<dyn BlobStore>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("small");
    copy_tree(small_tree(), &src);
    let vol = tmp.path().join("vol");
    volume_from(&src, &vol);

    let start = Instant::now();
    let first = sync_ok(&vol, url);
    let first_time = start.elapsed();
    let blobs = verify_clean(label, open());
    eprintln!(
        "{label}: first sync {first} in {:.2} s; {blobs} blobs in the container",
        first_time.as_secs_f64()
    );
    assert_eq!(first["first_sync"], true);
    // 1,266 inodes of the manifest (1,270 entries, 3 of them hard links)
    // and the root.
    assert_eq!(n(&first, "inodes_written"), 1268, "{first}");
    // Everything but the tmp root, deleted once the root was published.
    assert_eq!(n(&first, "objects_written"), blobs + 1, "{first}");
    assert_eq!(n(&first, "objects_deleted"), 1, "{first}");
    let out = tmp.path().join("export1");
    export_to(url, &out);
    assert_same_tree(label, &src, &out);

    let want = change_both(&src, &vol);
    let start = Instant::now();
    let second = sync_ok(&vol, url);
    let second_time = start.elapsed();
    eprintln!(
        "{label}: second sync {second} in {:.2} s",
        second_time.as_secs_f64()
    );
    assert_eq!(second["first_sync"], false);
    assert_eq!(n(&second, "inodes_written"), want.inodes, "{second}");
    assert_eq!(n(&second, "objects_written"), want.objects, "{second}");
    assert_eq!(
        n(&second, "inodes_deleted"),
        want.deleted_inodes,
        "{second}"
    );
    assert_eq!(
        n(&second, "objects_deleted"),
        want.deleted_objects,
        "{second}"
    );
    assert!(want.objects * 20 < n(&first, "objects_written"));
    verify_clean(label, open());
    let out = tmp.path().join("export2");
    export_to(url, &out);
    assert_same_tree(label, &src, &out);

    // Nothing changed: nothing written or deleted.
    let third = sync_ok(&vol, url);
    assert_eq!(n(&third, "objects_written"), 0, "{third}");
    assert_eq!(n(&third, "objects_deleted"), 0, "{third}");
    assert_eq!(n(&third, "inodes_unchanged"), 1268 + 1, "{third}");
}

#[test]
fn syncs_into_a_local_container_follow_the_volume() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let container = tmp.path().join("container");
    let url = container.to_str().expect("UTF-8 path").to_string();
    round_trip("local", &url, &|| open_local(&container));
}

#[test]
fn syncs_into_azurite_follow_the_volume() {
    let azurite = Azurite::start();
    let url = azurite.container_url("sync");
    let Ok(store::url::Location::Azure(target)) =
        store::url::Location::parse(&url, &|_: &str| None)
    else {
        panic!("not an Azure URL: {url}");
    };
    let bare = store::azure::AzureStore::new(target, &store::azure::AzureOptions::default())
        .expect("client");
    runtime()
        .block_on(bare.create_container())
        .expect("create container");
    let open =
        || store::open_with_env(&url, &StoreOptions::default(), &|_: &str| None).expect("open");
    round_trip("Azurite", &url, &open);
}

#[test]
fn cp_a_into_a_mount_then_tool_changes_sync_like_the_tree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("small");
    copy_tree(small_tree(), &src);
    let vol = tmp.path().join("vol");
    let mnt = tmp.path().join("mnt");
    let container = tmp.path().join("container");
    let url = container.to_str().expect("UTF-8").to_string();

    let m = Mounted::new(&vol, &mnt, &[]);
    let st = Command::new("cp")
        .arg("-a")
        .arg(src.join("."))
        .arg(&mnt)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a into the mount failed");
    m.unmount();
    let first = sync_ok(&vol, &url);
    eprintln!("mount: first sync {first}");
    assert_eq!(n(&first, "inodes_written"), 1268, "{first}");
    verify_clean("mount, first sync", open_local(&container));
    let out = tmp.path().join("export1");
    export_to(&url, &out);
    assert_same_tree("mount, first sync", &src, &out);

    // The same changes with ordinary calls in the source and the mount.
    let plan = Plan::new(&src);
    plan.apply_with_tools(&src);
    let m = Mounted::new(&vol, &mnt, &[]);
    plan.apply_with_tools(&mnt);
    plan.copy_times(&src, &mnt);
    m.unmount();
    let second = sync_ok(&vol, &url);
    eprintln!("mount: second sync {second}");
    let (files, dirs) = plan.touched();
    assert_eq!(
        n(&second, "inodes_written"),
        (files.len() + dirs.len()) as u64,
        "{second}"
    );
    assert_eq!(n(&second, "inodes_deleted"), 1, "{second}");
    assert!(n(&second, "objects_written") * 20 < n(&first, "objects_written"));
    verify_clean("mount, second sync", open_local(&container));
    let out = tmp.path().join("export2");
    export_to(&url, &out);
    assert_same_tree("mount, second sync", &src, &out);
}

#[test]
fn a_volume_in_use_or_another_container_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vol = tmp.path().join("vol");
    volume_from(&small_tree().join("links"), &vol);
    let c1 = tmp.path().join("c1");
    let c1s = c1.to_str().expect("UTF-8").to_string();

    // Mounted: refused, nothing written.
    let held = Mounted::new(&vol, &tmp.path().join("mnt"), &[]);
    let out = sync_cmd(&vol, &c1s, &[]).output().expect("run");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("in use") && err.contains("unmount"), "{err}");
    assert!(!c1.exists() || fs::read_dir(&c1).expect("read").next().is_none());
    held.unmount();

    sync_ok(&vol, &c1s);
    // Another container: refused, with the way out.
    let c2 = tmp.path().join("c2");
    let c2s = c2.to_str().expect("UTF-8").to_string();
    let out = sync_cmd(&vol, &c2s, &[]).output().expect("run");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--new-container"), "{err}");
    let out = sync_cmd(&vol, &c2s, &["--new-container"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(final_report(&out)["first_sync"], true);
    // Back to c1, which is not empty: a first sync needs an empty one.
    let out = sync_cmd(&vol, &c1s, &["--new-container"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    verify_clean("c2", open_local(&c2));
}

/// Runs the sync, killed after random delays, until one run finishes.
/// Returns the number of kills.
fn killed_until_done(vol: &Path, url: &str, full: Duration, rng: &mut rand::rngs::StdRng) -> u32 {
    let mut kills = 0;
    for attempt in 0..40 {
        let mut child = sync_cmd(vol, url, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        if kills < 8 && attempt < 20 {
            // Within the first quarter of what is left, roughly: each
            // killed run leaves less to do (the next one resumes), so the
            // window shrinks by a quarter with every kill (in a fixed
            // window, a third run could finish and the test see too few
            // kills).
            let span = (0..kills).fold(full.as_millis() as u64 / 4, |s, _| s * 3 / 4);
            let ms = rng.random_range(5..span.max(20));
            let deadline = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < deadline {
                if child.try_wait().expect("try_wait").is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if child.try_wait().expect("try_wait").is_none() {
                child.kill().expect("SIGKILL");
                child.wait().expect("wait");
                kills += 1;
                continue;
            }
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "attempt {attempt}: {status}");
        return kills;
    }
    panic!("the sync never finished");
}

#[test]
fn killed_syncs_rerun_to_a_clean_container() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("small");
    copy_tree(small_tree(), &src);
    let vol = tmp.path().join("vol");
    volume_from(&src, &vol);
    // How long an uninterrupted first sync takes, on a copy.
    let probe = tmp.path().join("probe-vol");
    copy_tree(&vol, &probe);
    let probe_c = tmp.path().join("probe-c");
    let start = Instant::now();
    sync_ok(&probe, probe_c.to_str().expect("UTF-8"));
    let full = start.elapsed();

    let container = tmp.path().join("container");
    let url = container.to_str().expect("UTF-8").to_string();
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let kills = killed_until_done(&vol, &url, full, &mut rng);
    eprintln!("first sync: {kills} kills, uninterrupted {full:?}");
    assert!(kills >= 3, "only {kills} kills");
    verify_clean("after the killed first sync", open_local(&container));
    let out = tmp.path().join("export1");
    export_to(&url, &out);
    assert_same_tree("killed first sync", &src, &out);

    change_both(&src, &vol);
    let kills = killed_until_done(&vol, &url, full / 4, &mut rng);
    eprintln!("second sync: {kills} kills");
    verify_clean("after the killed second sync", open_local(&container));
    let out = tmp.path().join("export2");
    export_to(&url, &out);
    assert_same_tree("killed second sync", &src, &out);
}
