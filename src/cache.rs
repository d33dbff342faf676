//! What the last build knew, so the next one only does the work that changed: Cargo's
//! fingerprints and git's index, for `out/`. Kept in `.devbox-gen/build-cache.json` beside
//! `out/`, never committed (the directory ignores itself, as Cargo's `target/` does).
//!
//! Two records:
//! - **files**: for every generated file of `out/`, its [`Stamp`] (size, mtime, inode) and a
//!   hash of its bytes. A file whose stamp has not changed is not read again.
//! - **bundles**: for every user file, a fingerprint of its resolved box, and the path of
//!   every file its bundle rendered to. When the fingerprint is the same and `out/` still holds
//!   those files with the bytes recorded for them, the box is not rendered, checked or emitted
//!   again. A build records the two only after writing `out/`, so the bytes recorded for a
//!   bundle's file are those its bundle rendered: one hash serves both.
//!
//! The cache is only ever a shortcut. A missing, unreadable or foreign cache is ignored and the
//! build does everything; so is one written by another devbox-gen binary or for another
//! template, or when any file the template imported has changed. `build --check` reads it but
//! never writes it, so checking stays read-only.
//!
//! The same directory holds `lock`, which a build that writes holds while it runs ([`BuildLock`]).
//!
//! Racy stamps, as git calls them: a file rewritten within the filesystem's timestamp tick of
//! the moment it was recorded keeps its mtime. Stamps that recent are not trusted: the file is
//! read and hashed, and the next build records it again.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::delivery::Delivered;
use crate::render::Template;
use crate::resolve::ResolvedBox;

/// The cache directory, relative to the config repo.
pub(crate) const CACHE_DIR: &str = ".devbox-gen";
const CACHE_FILE: &str = "build-cache.json";
const LOCK_FILE: &str = "lock";
/// Bumped whenever what is stored, or what it means, changes.
const FORMAT: u32 = 4;
/// Stamps younger than this, relative to when the cache was written, are verified by content.
const RACY_WINDOW_NS: i64 = 100_000_000;

/// A 128-bit xxh3 hash: of a file's bytes, or of a box's inputs. Not cryptographic, and need not
/// be: the cache is local and never decides anything a re-render could not overturn. Stored as
/// 32 hex digits, written and read without an allocation: a 10,000-box cache holds 200,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digest(u128);

impl Digest {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        Digest(xxhash_rust::xxh3::xxh3_128(bytes))
    }

    fn to_hex(self) -> [u8; 32] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 32];
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = HEX[((self.0 >> (124 - 4 * i)) & 0xf) as usize];
        }
        hex
    }

    fn from_hex(text: &str) -> Option<Self> {
        // `from_str_radix` alone would take a leading `+`.
        let hex = text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| u128::from_str_radix(text, 16).ok().map(Digest)).flatten()
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(std::str::from_utf8(&self.to_hex()).expect("hex digits are ASCII"))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Digest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("32 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Digest, E> {
                Digest::from_hex(text).ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(text), &self))
            }
        }
        deserializer.deserialize_str(Hex)
    }
}

/// What identifies a file's contents without reading them (git's stat data, minus ctime, which
/// hard-linking a file into the staging directory changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    pub len: u64,
    pub mtime_ns: i64,
    pub ino: u64,
}

impl Stamp {
    pub(crate) fn of(metadata: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: metadata.len(),
            mtime_ns: metadata.mtime().saturating_mul(1_000_000_000).saturating_add(metadata.mtime_nsec()),
            ino: metadata.ino(),
        }
    }
}

/// A file of `out/` as last seen: its stamp and the hash of its bytes. Stored as one row,
/// `[len, mtime_ns, ino, digest]`: a 10,000-box cache holds 100,000 of them, and field names
/// were a quarter of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "SeenRow", from = "SeenRow")]
pub(crate) struct Seen {
    pub stamp: Stamp,
    pub digest: Digest,
}

type SeenRow = (u64, i64, u64, Digest);

impl From<Seen> for SeenRow {
    fn from(seen: Seen) -> Self {
        (seen.stamp.len, seen.stamp.mtime_ns, seen.stamp.ino, seen.digest)
    }
}

impl From<SeenRow> for Seen {
    fn from((len, mtime_ns, ino, digest): SeenRow) -> Self {
        Seen { stamp: Stamp { len, mtime_ns, ino }, digest }
    }
}

/// What the last build rendered for one user file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct BundleRecord {
    /// Of the resolved box: [`fingerprint`].
    pub fingerprint: Digest,
    /// Every file the box rendered to, `out/`-relative. Their bytes are those the cache's
    /// files record holds for them ([`BuildCache::recorded`]).
    pub files: Vec<String>,
    /// What delivery needs of the box, so `out/_gitops/` can be emitted without rendering it.
    pub delivered: Delivered,
    /// `Kind/namespace/name` of each object of the bundle's own (not the shared ones): no two
    /// bundles of a cluster may hold the same one.
    pub objects: Vec<String>,
    /// What the check stage warned of (a ConfigMap nothing emits), told again by every build
    /// that keeps the box instead of rendering it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The fingerprint of a box: everything the template, the check and emit see of it.
pub fn fingerprint(resolved: &ResolvedBox) -> Digest {
    Digest::of(&serde_json::to_vec(resolved).expect("a resolved box is plain data"))
}

/// Everything besides the boxes that decides the output: the binary and the template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Generator {
    /// devbox-gen's version and its executable's stamp: another build of the tool, another cache.
    tool: String,
    /// `embedded`, or the template file's path.
    template: String,
    /// Every file the template imported (itself included), with the hash of its bytes.
    imports: Vec<(PathBuf, Digest)>,
    /// Where an import looked first and found nothing: a file created there would be imported
    /// instead, so the cache holds only while they stay absent.
    passed_over: Vec<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    format: u32,
    generator: Generator,
    /// When the cache was written, in nanoseconds since the epoch: the racy-stamp reference.
    written_ns: i64,
    files: BTreeMap<String, Seen>,
    /// By user file (`users/alice.toml`).
    bundles: BTreeMap<String, BundleRecord>,
}

/// The cache file as parsed, before it is known whether it applies ([`BuildCache::from_stored`]):
/// parsing it (about 100 ms at 10,000 users) needs no template, so it overlaps reading users/.
pub(crate) struct StoredCache(Option<Stored>);

impl StoredCache {
    /// Nothing when the file is missing, unreadable or not a regular file (reading a FIFO would
    /// block the build forever): the build is then only slower.
    pub(crate) fn read(root: &Path) -> Self {
        let path = root.join(CACHE_DIR).join(CACHE_FILE);
        let stored = fs::metadata(&path)
            .ok()
            .filter(fs::Metadata::is_file)
            .and_then(|_| fs::read(&path).ok())
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok());
        StoredCache(stored)
    }
}

/// The cache as loaded: empty when there was none or it no longer applies.
#[derive(Debug, Default)]
pub(crate) struct BuildCache {
    /// `None` when this binary cannot identify itself: nothing is reused or saved.
    tool: Option<String>,
    template: String,
    imports: Vec<(PathBuf, Digest)>,
    passed_over: Vec<PathBuf>,
    written_ns: i64,
    files: BTreeMap<String, Seen>,
    bundles: BTreeMap<String, BundleRecord>,
    /// Whether what was loaded is what would be saved (then saving writes nothing).
    loaded: bool,
}

impl BuildCache {
    /// The cache of the config repo at `root`, for `template`; empty if it does not apply.
    #[cfg(test)]
    pub(crate) fn load(root: &Path, template: &Template) -> Self {
        Self::from_stored(StoredCache::read(root), template)
    }

    /// The cache read by [`StoredCache::read`], if it was written by this binary for `template`
    /// and the files the template imported are unchanged.
    pub(crate) fn from_stored(stored: StoredCache, template: &Template) -> Self {
        let mut cache = BuildCache { tool: tool_identity(), template: template_identity(template), ..BuildCache::default() };
        let (Some(tool), Some(stored)) = (&cache.tool, stored.0) else { return cache };
        let generator = &stored.generator;
        let shadowed = generator.passed_over.iter().any(|path| path.symlink_metadata().is_ok());
        if stored.format != FORMAT
            || generator.tool != *tool
            || generator.template != cache.template
            || shadowed
            || !unchanged(&generator.imports)
        {
            return cache;
        }
        cache.imports = stored.generator.imports;
        cache.passed_over = stored.generator.passed_over;
        cache.written_ns = stored.written_ns;
        cache.files = stored.files;
        cache.bundles = stored.bundles;
        cache.loaded = true;
        cache
    }

    /// The hash of a file of `out/`, if its stamp says it has not changed since it was recorded.
    pub(crate) fn digest_if_unchanged(&self, path: &str, stamp: Stamp) -> Option<Digest> {
        let seen = self.files.get(path)?;
        (seen.stamp == stamp && stamp.mtime_ns < self.written_ns - RACY_WINDOW_NS).then_some(seen.digest)
    }

    /// The hash of the bytes the last build left at `path` of `out/`.
    pub(crate) fn recorded(&self, path: &str) -> Option<Digest> {
        self.files.get(path).map(|seen| seen.digest)
    }

    /// What the last build rendered for this user file, if its inputs were the same.
    pub(crate) fn bundle(&self, source: &str, fingerprint: Digest) -> Option<&BundleRecord> {
        self.bundles.get(source).filter(|record| record.fingerprint == fingerprint)
    }

    /// Records what this build knows and writes it, unless it is what was loaded. Failing to
    /// write is not an error: the next build is only slower.
    pub(crate) fn save(
        mut self,
        root: &Path,
        files: BTreeMap<String, Seen>,
        bundles: BTreeMap<String, BundleRecord>,
        imported: BTreeSet<PathBuf>,
        passed_over: BTreeSet<PathBuf>,
    ) {
        let Some(tool) = self.tool.take() else { return };
        debug_assert!(
            bundles.values().flat_map(|record| &record.files).all(|path| files.contains_key(path)),
            "a bundle's file is missing from the files written: its bytes would be unknown"
        );
        let known: BTreeSet<&PathBuf> = self.imports.iter().map(|(path, _)| path).chain(&self.passed_over).collect();
        let new_imports = imported.iter().chain(&passed_over).any(|path| !known.contains(path));
        if self.loaded && !new_imports && files == self.files && bundles == self.bundles && !self.has_racy_stamps() {
            return;
        }
        let mut imports: BTreeSet<PathBuf> = self.imports.into_iter().map(|(path, _)| path).collect();
        imports.extend(imported);
        let mut hashed = Vec::with_capacity(imports.len());
        for path in imports {
            let Ok(bytes) = fs::read(&path) else {
                return; // an import vanished meanwhile: record nothing rather than something wrong
            };
            hashed.push((path, Digest::of(&bytes)));
        }
        let mut passed_over: BTreeSet<PathBuf> = passed_over;
        passed_over.extend(self.passed_over);
        let generator = Generator { tool, template: self.template, imports: hashed, passed_over: passed_over.into_iter().collect() };
        // Streamed to the file: 33 MB of JSON at 10,000 boxes, never all in memory. (Serializing
        // its two large parts on both cores saved 30 ms there and raised the peak by 40 MB.)
        let stored = Stored { format: FORMAT, generator, written_ns: now_ns(), files, bundles };
        let _ = write_atomically(root, &stored);
    }

    /// Whether some recorded stamp is too recent to be trusted next time: then the cache is
    /// written again, with a later reference time, once those files have been verified.
    fn has_racy_stamps(&self) -> bool {
        self.files.values().any(|seen| seen.stamp.mtime_ns >= self.written_ns - RACY_WINDOW_NS)
    }
}

/// `.devbox-gen/` made if missing. Like Cargo's target/, it keeps itself out of git and out of
/// backups. A link in its place is refused, not followed: devbox-gen writes only inside the
/// config repo, and a link committed in a pull request would have CI's build write elsewhere.
fn own_dir(root: &Path) -> std::io::Result<PathBuf> {
    let dir = root.join(CACHE_DIR);
    match dir.symlink_metadata() {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{CACHE_DIR} is a symbolic link")));
        }
        Ok(metadata) if !metadata.is_dir() => {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{CACHE_DIR} is not a directory")));
        }
        _ => fs::create_dir_all(&dir)?,
    }
    for (name, text) in [(".gitignore", "# Created by devbox-gen: a local build cache.\n*\n"), ("CACHEDIR.TAG", CACHEDIR_TAG)] {
        let path = dir.join(name);
        // Written again unless it is a file with exactly this text: a full disk can leave it
        // empty (an empty .gitignore ignores nothing), and a link is replaced, not followed.
        let intact = path.symlink_metadata().is_ok_and(|m| m.is_file()) && fs::read(&path).is_ok_and(|bytes| bytes == text.as_bytes());
        if !intact {
            if path.symlink_metadata().is_ok() {
                fs::remove_file(&path)?;
            }
            fs::write(path, text)?;
        }
    }
    Ok(dir)
}

/// `.devbox-gen/lock`, held for the length of a build that writes: two builds of one repo (an
/// editor's build on save and one in a terminal) take turns, as Cargo's do on target/, instead
/// of staging, swapping and recording `out/` over each other. Released when dropped.
#[derive(Debug)]
pub(crate) struct BuildLock {
    /// The locked file (closing it unlocks), or none where locks are not supported.
    _held: Option<fs::File>,
}

impl BuildLock {
    /// Takes the lock, calling `waiting` first when another build holds it. Where the file
    /// system has no locks (some network file systems), the build goes on without one, as
    /// Cargo's does.
    pub(crate) fn acquire(root: &Path, waiting: impl FnOnce()) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOFOLLOW: a link in place of the lock is an error, not a file elsewhere to create.
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(own_dir(root)?.join(LOCK_FILE))?;
        let locked = match file.try_lock() {
            Ok(()) => Ok(()),
            Err(fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock()
            }
            Err(fs::TryLockError::Error(error)) => Err(error),
        };
        match locked {
            Ok(()) => Ok(Self { _held: Some(file) }),
            Err(error) if error.kind() == std::io::ErrorKind::Unsupported || error.raw_os_error() == Some(ENOLCK) => {
                Ok(Self { _held: None })
            }
            Err(error) => Err(error),
        }
    }
}

/// What NFS without a lock manager answers (ENOLCK: 37 on Linux, 77 on macOS).
const ENOLCK: i32 = if cfg!(target_os = "macos") { 77 } else { 37 };

fn write_atomically(root: &Path, stored: &Stored) -> std::io::Result<()> {
    // Interrupted, the cache is written whole rather than left as a temporary file.
    let _writing = crate::interrupt::writing();
    let dir = &own_dir(root)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(std::io::BufWriter::new(&mut file), stored)?;
    file.flush()?;
    file.persist(dir.join(CACHE_FILE))?;
    Ok(())
}

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by devbox-gen.\n# For information about cache directory tags see https://bford.info/cachedir/\n";

fn unchanged(imports: &[(PathBuf, Digest)]) -> bool {
    imports.iter().all(|(path, digest)| fs::read(path).is_ok_and(|bytes| Digest::of(&bytes) == *digest))
}

fn tool_identity() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let stamp = Stamp::of(&fs::metadata(&exe).ok()?);
    Some(format!("devbox-gen {} {} {} {}", env!("CARGO_PKG_VERSION"), stamp.len, stamp.mtime_ns, stamp.ino))
}

fn template_identity(template: &Template) -> String {
    match template {
        Template::Embedded => "embedded".into(),
        Template::File(path) => path.display().to_string(),
    }
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mtime_ns: i64) -> Stamp {
        Stamp { len: 10, mtime_ns, ino: 7 }
    }

    fn cache_with(file: &str, seen: Seen, written_ns: i64) -> BuildCache {
        BuildCache { tool: Some("t".into()), written_ns, files: BTreeMap::from([(file.to_string(), seen)]), ..BuildCache::default() }
    }

    #[test]
    fn a_stamp_is_trusted_only_when_equal_and_old_enough() {
        let digest = Digest::of(b"x");
        let written = 10 * RACY_WINDOW_NS;
        let cache = cache_with("a/f.yaml", Seen { stamp: stamp(written - 2 * RACY_WINDOW_NS), digest }, written);
        assert_eq!(cache.digest_if_unchanged("a/f.yaml", stamp(written - 2 * RACY_WINDOW_NS)), Some(digest));
        assert_eq!(cache.digest_if_unchanged("a/f.yaml", Stamp { len: 11, ..stamp(written - 2 * RACY_WINDOW_NS) }), None);
        assert_eq!(cache.digest_if_unchanged("a/g.yaml", stamp(written - 2 * RACY_WINDOW_NS)), None);
        // Recorded in the same tick as the cache was written: it could have changed unseen.
        let racy = cache_with("a/f.yaml", Seen { stamp: stamp(written - 1), digest }, written);
        assert_eq!(racy.digest_if_unchanged("a/f.yaml", stamp(written - 1)), None);
        assert!(racy.has_racy_stamps());
    }

    #[test]
    fn digests_round_trip_as_hex() {
        for digest in [Digest::of(b"devbox"), Digest(0), Digest(u128::MAX), Digest(0xf << 124)] {
            let json = serde_json::to_string(&digest).unwrap();
            assert_eq!(json, format!("\"{:032x}\"", digest.0));
            assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
        }
        let short = format!("\"{:x}\"", 0xabcu32);
        for bad in [short.as_str(), "\"+0000000000000000000000000000000\"", "\"0000000000000000000000000000000g\"", "3"] {
            assert!(serde_json::from_str::<Digest>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_seen_file_is_stored_as_one_row() {
        let seen = Seen { stamp: Stamp { len: 660, mtime_ns: -5, ino: 13_819_744 }, digest: Digest(0xab) };
        let text = serde_json::to_string(&seen).unwrap();
        assert_eq!(text, r#"[660,-5,13819744,"000000000000000000000000000000ab"]"#);
        assert_eq!(serde_json::from_str::<Seen>(&text).unwrap(), seen);
        assert!(serde_json::from_str::<Seen>(r#"{"stamp":{"len":1,"mtime_ns":1,"ino":1},"digest":"ab"}"#).is_err());
    }

    #[test]
    fn saves_and_loads_and_ignores_another_template() {
        let dir = tempfile::tempdir().unwrap();
        let template = Template::Embedded;
        let cache = BuildCache::load(dir.path(), &template);
        assert!(!cache.loaded);
        let seen = Seen { stamp: stamp(1), digest: Digest::of(b"x") };
        cache.save(dir.path(), BTreeMap::from([("a/f.yaml".into(), seen)]), BTreeMap::new(), BTreeSet::new(), BTreeSet::new());
        assert!(dir.path().join(CACHE_DIR).join(".gitignore").exists());
        let loaded = BuildCache::load(dir.path(), &template);
        assert!(loaded.loaded);
        assert_eq!(loaded.files.get("a/f.yaml"), Some(&seen));
        let other = BuildCache::load(dir.path(), &Template::File(dir.path().join("t.jsonnet")));
        assert!(!other.loaded && other.files.is_empty());
    }

    #[test]
    fn an_edited_import_invalidates_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonnet");
        fs::write(&path, "function(box) {}").unwrap();
        let template = Template::File(path.clone());
        let seen = Seen { stamp: stamp(1), digest: Digest::of(b"x") };
        BuildCache::load(dir.path(), &template).save(
            dir.path(),
            BTreeMap::from([("a/f.yaml".into(), seen)]),
            BTreeMap::new(),
            BTreeSet::from([path.clone()]),
            BTreeSet::new(),
        );
        assert!(BuildCache::load(dir.path(), &template).loaded);
        fs::write(&path, "function(box) { a: 1 }").unwrap();
        assert!(!BuildCache::load(dir.path(), &template).loaded);
    }

    #[test]
    fn a_corrupt_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(CACHE_DIR)).unwrap();
        fs::write(dir.path().join(CACHE_DIR).join(CACHE_FILE), "{not json").unwrap();
        assert!(!BuildCache::load(dir.path(), &Template::Embedded).loaded);
    }

    #[test]
    fn a_fifo_in_place_of_the_cache_is_ignored_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(CACHE_DIR)).unwrap();
        let fifo = dir.path().join(CACHE_DIR).join(CACHE_FILE);
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        let root = dir.path().to_path_buf();
        let (sender, receiver) = std::sync::mpsc::channel();
        // On another thread, so that a blocking read fails the test instead of hanging it.
        std::thread::spawn(move || sender.send(BuildCache::load(&root, &Template::Embedded).loaded));
        let loaded = receiver.recv_timeout(std::time::Duration::from_secs(10)).expect("reading the cache blocked on a FIFO");
        assert!(!loaded);
    }
}
