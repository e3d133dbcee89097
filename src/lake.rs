//! The lake: every input kept untouched, named by the BLAKE3 hash of its bytes, with an
//! append-only manifest beside the objects that makes the lake enough to rebuild the vault.
//!
//! `manifest.jsonl` has one JSON object a line: `object` lines say which source stored
//! which bytes under which original name (written right after the object itself), and
//! `load` lines say which source loaded which object, with the `load_ts` and satellite
//! the load used (written right after the load committed). Lines are only ever added,
//! each with one `write`, so a crash can at most cut the last line, which readers ignore;
//! `flush` makes them durable, once per source's sync.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ReadError, VaultError};

/// The manifest's file name, in the lake's root.
pub const MANIFEST: &str = "manifest.jsonl";
/// The salt vault keys are derived with, beside the manifest.
pub const KEY_SALT: &str = "vault-key-salt";

/// A (source, original name) pair: who stored an object, and what they called it.
pub type Owner = (String, String);

/// The (hash, source) pairs the manifest lists, read on first use and kept up to date.
type Listed = Arc<Mutex<Option<HashSet<(String, String)>>>>;

/// A content-addressed folder of input files, and its manifest.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
    /// (hash, source) pairs the manifest lists, read on first use.
    objects: Listed,
    /// Whether lines were appended since the manifest was last fsynced.
    unsynced: Arc<std::sync::atomic::AtomicBool>,
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A source stored these bytes (a file, or an API response body) in the lake.
    Object(ObjectEntry),
    /// A source loaded this object into the vault, and committed.
    Load(LoadEntry),
    /// `lake gc` removed the object: no committed load referred to it.
    Removed(RemovedEntry),
}

/// An object no load refers to: its hash, its size and who stored it.
pub type Unreferenced = (String, u64, Vec<Owner>);

/// An object `lake gc` removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedEntry {
    pub hash: String,
    pub removed_at: DateTime<Utc>,
}

impl Entry {
    /// The object the entry is about.
    pub fn hash(&self) -> &str {
        match self {
            Entry::Object(o) => &o.hash,
            Entry::Load(l) => &l.hash,
            Entry::Removed(r) => &r.hash,
        }
    }
}

/// Remove a file; one that is not there is already what was wanted.
pub fn remove_if_present(path: &Path) -> Result<(), VaultError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(VaultError::Io {
            context: format!("cannot remove `{}`", path.display()),
            source,
        }),
    }
}

/// Whether `text` is a lake name: 64 lowercase hex digits.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An object stored for a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// BLAKE3 of the bytes, 64 hex digits: the object's name.
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// The source that stored it.
    pub source: String,
    /// Its original name (a path relative to the project, or a URL without secrets).
    pub name: String,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
}

/// A committed load of an object by a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadEntry {
    /// The object loaded.
    pub hash: String,
    /// The source that loaded it.
    pub source: String,
    /// Its original name.
    pub name: String,
    /// The `load_ts` of every row the load added.
    pub load_ts: DateTime<Utc>,
    /// The satellite it loaded into.
    #[serde(default)]
    pub satellite: Option<String>,
    /// The vault it loaded into, as the project names it (`ingestor.duckdb`): vaults
    /// that share a lake (`--db`) each replay their own loads.
    #[serde(default)]
    pub vault: Option<String>,
}

impl LoadEntry {
    /// Whether the load went into `vault` (a line that does not say is anyone's).
    pub fn is_for(&self, vault: &str) -> bool {
        self.vault.as_deref().is_none_or(|v| v == vault)
    }
}

/// The manifest as read: its entries in order, and lines that could not be read.
#[derive(Debug, Default)]
pub struct Manifest {
    pub entries: Vec<Entry>,
    /// (line number, what is wrong) of damaged lines; a cut last line is not damage.
    pub damaged: Vec<(usize, String)>,
}

impl Manifest {
    /// The loads, in the order they were committed.
    pub fn loads(&self) -> impl Iterator<Item = &LoadEntry> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Load(l) => Some(l),
            _ => None,
        })
    }

    /// The objects, in the order they were stored.
    pub fn objects(&self) -> impl Iterator<Item = &ObjectEntry> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Object(o) => Some(o),
            _ => None,
        })
    }
}

/// What the file system says of a file: enough to tell, as git's index does, that it has
/// not been written since it was hashed. ctime cannot be set by programs and changes on
/// every write, so a rewritten file never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
}

/// The file's `FileStat`; `None` where the platform has no ctime and inode (always hash).
pub fn file_stat(path: &Path) -> Option<FileStat> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path).ok()?;
        Some(FileStat {
            size: m.len(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            inode: m.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Remove a last line cut short by a crash (one without its newline), so the next line
/// starts on a line of its own.
fn drop_cut_line(file: &mut File) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let len = file.metadata()?.len();
    let mut end = len;
    let mut last = [0u8; 1];
    if len == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(());
    }
    // Walk back to the newline before the cut line.
    let mut buf = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return file.set_len(start + i as u64 + 1);
        }
        end = start;
    }
    file.set_len(0)
}

/// BLAKE3 of a file's bytes (64 hex characters) and its size.
pub fn hash_file(path: &Path, name: &str) -> Result<(String, u64), ReadError> {
    let io = |source| ReadError::Io {
        path: name.to_string(),
        source,
    };
    // Read through a fixed 16 MB buffer rather than mapping the file: a mapping's pages
    // count against the process's memory, as large as the input. Each chunk is hashed on
    // every core.
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 16 << 20];
    let mut size = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update_rayon(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// Fill `buf` as far as the file allows; the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Lake {
    /// The lake at `root` (created on first store).
    pub fn new(root: PathBuf) -> Self {
        Lake {
            root,
            objects: Arc::default(),
            unsynced: Arc::default(),
        }
    }

    /// The lake's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the manifest is.
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(MANIFEST)
    }

    /// The salt vault keys are derived with (`vault-key-salt` beside the manifest): made
    /// once, at random, so that every vault rebuilt from this lake derives the same key.
    pub fn key_salt(&self) -> Result<[u8; 16], VaultError> {
        let path = self.root.join(KEY_SALT);
        let io = |context: String| move |source| VaultError::Io { context, source };
        match fs::read_to_string(&path) {
            Ok(text) => {
                return crate::vault::hash::parse_salt(&text).ok_or_else(|| {
                    VaultError::Refused(format!(
                        "`{}` does not hold a salt (32 hex digits); it must be the one the \
                         vault was made with",
                        path.display()
                    ))
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(io(format!("lake: cannot read `{}`", path.display()))(
                    source,
                ))
            }
        }
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| {
            VaultError::Refused(format!("no random bytes for the vault key's salt: {e}"))
        })?;
        let hex = crate::vault::hash::hex_string(&salt);
        fs::create_dir_all(&self.root)
            .map_err(io(format!("lake: cannot create `{}`", self.root.display())))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.root).map_err(io(format!(
            "lake: cannot create a file in `{}`",
            self.root.display()
        )))?;
        tmp.write_all(format!("{hex}\n").as_bytes())
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(io(format!("lake: cannot write `{}`", path.display())))?;
        // Another process may have made one meanwhile: the first one stays.
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(salt),
            Err(_) if path.is_file() => self.key_salt(),
            Err(e) => Err(io(format!("lake: cannot write `{}`", path.display()))(
                e.error,
            )),
        }
    }

    /// Read the manifest (empty when there is none yet).
    pub fn manifest(&self) -> Result<Manifest, VaultError> {
        let path = self.manifest_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(source) => {
                return Err(VaultError::Io {
                    context: format!("lake: cannot read `{}`", path.display()),
                    source,
                })
            }
        };
        let mut manifest = Manifest::default();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|source| VaultError::Io {
                    context: format!("lake: cannot read `{}`", path.display()),
                    source,
                })?;
            if n == 0 {
                break;
            }
            number += 1;
            // A line without its newline was cut by a crash while it was written: the
            // object or load it describes is written again by the next sync.
            if line.last() != Some(&b'\n') {
                break;
            }
            match serde_json::from_slice::<Entry>(&line) {
                Ok(entry) if !is_hash(entry.hash()) => manifest
                    .damaged
                    .push((number, format!("`{}` is not a lake name", entry.hash()))),
                Ok(Entry::Load(mut load)) => {
                    // The vault keeps microseconds; a time written by hand may hold more.
                    load.load_ts = load.load_ts.trunc_subsecs(6);
                    manifest.entries.push(Entry::Load(load));
                }
                Ok(entry) => manifest.entries.push(entry),
                Err(e) => manifest.damaged.push((number, e.to_string())),
            }
        }
        // An object whose last line is its removal is gone: its object lines no longer
        // list it (a later store lists it again).
        let mut removed = HashSet::new();
        for e in &manifest.entries {
            match e {
                Entry::Object(o) => {
                    removed.remove(&o.hash);
                }
                Entry::Removed(r) => {
                    removed.insert(r.hash.clone());
                }
                Entry::Load(_) => {}
            }
        }
        if !removed.is_empty() {
            manifest
                .entries
                .retain(|e| !matches!(e, Entry::Object(o) if removed.contains(&o.hash)));
        }
        Ok(manifest)
    }

    /// Objects in the lake that `keep` does not hold: each with its size and its
    /// manifest owners (source, original name).
    pub fn unreferenced(&self, keep: &HashSet<String>) -> Result<Vec<Unreferenced>, VaultError> {
        let manifest = self.manifest()?;
        let mut out = Vec::new();
        for path in self.object_paths()? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !is_hash(name) || keep.contains(name) {
                continue;
            }
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let owners = manifest
                .objects()
                .filter(|o| o.hash == name)
                .map(|o| (o.source.clone(), o.name.clone()))
                .collect();
            out.push((name.to_string(), size, owners));
        }
        Ok(out)
    }

    /// Remove objects (`lake gc`): each file, then one manifest line for each, fsynced.
    pub fn remove_objects(&self, hashes: &[String]) -> Result<(), VaultError> {
        // The lines first, durably: a file that cannot be removed (or a crash midway)
        // leaves an object the manifest no longer lists, which verify reports as
        // unlisted and checks, never a listed object gone missing.
        let lines: Vec<Entry> = hashes
            .iter()
            .map(|hash| {
                Entry::Removed(RemovedEntry {
                    hash: hash.clone(),
                    removed_at: Utc::now(),
                })
            })
            .collect();
        self.append(&lines)?;
        for hash in hashes {
            remove_if_present(&self.path_of(hash))?;
        }
        Ok(())
    }

    /// Append entries to the manifest: one write, then fsync.
    pub fn append(&self, entries: &[Entry]) -> Result<(), VaultError> {
        self.append_lines(entries)?;
        self.flush()
    }

    /// Make appended lines durable (one fsync for every line since the last).
    pub fn flush(&self) -> Result<(), VaultError> {
        use std::sync::atomic::Ordering;
        if !self.unsynced.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        let path = self.manifest_path();
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|source| VaultError::Io {
                context: format!("lake: cannot fsync `{}`", path.display()),
                source,
            })
    }

    /// Append entries with one `write`, without waiting for the disk: a unit's lines are
    /// made durable by `flush` at the end of its source's sync, and until then the vault
    /// (whose commit is durable) can list them again (`Pipeline::reconcile_manifest`).
    pub fn append_lines(&self, entries: &[Entry]) -> Result<(), VaultError> {
        if entries.is_empty() {
            return Ok(());
        }
        let path = self.manifest_path();
        let err = |source| VaultError::Io {
            context: format!("lake: cannot write `{}`", path.display()),
            source,
        };
        fs::create_dir_all(&self.root).map_err(err)?;
        let mut text = Vec::new();
        for e in entries {
            serde_json::to_writer(&mut text, e).expect("manifest entries serialise");
            text.push(b'\n');
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(err)?;
        drop_cut_line(&mut file).map_err(err)?;
        file.write_all(&text).map_err(err)?;
        self.unsynced
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut known = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = known.as_mut() {
            for e in entries {
                if let Entry::Object(o) = e {
                    known.insert((o.hash.clone(), o.source.clone()));
                }
            }
        }
        Ok(())
    }

    /// Whether the manifest lists `hash` as stored by `source`.
    fn lists(&self, hash: &str, source: &str) -> Result<bool, VaultError> {
        let mut known = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        if known.is_none() {
            let manifest = self.manifest()?;
            *known = Some(
                manifest
                    .objects()
                    .map(|o| (o.hash.clone(), o.source.clone()))
                    .collect(),
            );
        }
        Ok(known
            .as_ref()
            .is_some_and(|k| k.contains(&(hash.to_string(), source.to_string()))))
    }

    /// List an object stored for `source` in the manifest, unless it already is.
    pub fn note_object(
        &self,
        hash: &str,
        size: u64,
        source: &str,
        name: &str,
    ) -> Result<(), VaultError> {
        if self.lists(hash, source)? {
            return Ok(());
        }
        self.append_lines(&[Entry::Object(ObjectEntry {
            hash: hash.to_string(),
            size,
            source: source.to_string(),
            name: name.to_string(),
            stored_at: Utc::now(),
        })])
    }

    /// Where the file with this hash lives: `<root>/<first two hex>/<hash>`.
    pub fn path_of(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2]).join(hash)
    }

    /// Copy `src` into the lake under `hash`, atomically: a temporary file in the same
    /// folder, fsync, rename, fsync the folder. The bytes are hashed again while copying,
    /// so a file that changed since it was hashed is refused rather than misfiled.
    /// The object is then listed in the manifest for `source` (if it was not yet).
    pub fn store(
        &self,
        src: &Path,
        hash: &str,
        name: &str,
        source: &str,
    ) -> Result<PathBuf, anyhow::Error> {
        let dest = self.path_of(hash);
        if !dest.is_file() {
            self.copy_in(src, hash, name, &dest)?;
        }
        let size = fs::metadata(&dest)
            .map_err(|source| VaultError::Io {
                context: format!("lake: cannot read `{}`", dest.display()),
                source,
            })?
            .len();
        self.note_object(hash, size, source, name)?;
        Ok(dest)
    }

    /// Keep `bytes` (an API response body, a unit's page list) as an object of `source`;
    /// their hash and where they are. Written as `store` writes: temporary file, fsync,
    /// rename.
    pub fn store_bytes(
        &self,
        bytes: &[u8],
        name: &str,
        source: &str,
    ) -> Result<(String, PathBuf), VaultError> {
        let hash = blake3::hash(bytes).to_hex().to_string();
        let dest = self.path_of(&hash);
        if !dest.is_file() {
            self.persist(&dest, |tmp| tmp.write_all(bytes))?;
        }
        self.note_object(&hash, bytes.len() as u64, source, name)?;
        Ok((hash, dest))
    }

    /// Write a new object at `dest` through a temporary file in its folder: `write` fills
    /// it, then fsync, rename, fsync the folder.
    fn persist(
        &self,
        dest: &Path,
        write: impl FnOnce(&mut File) -> std::io::Result<()>,
    ) -> Result<(), VaultError> {
        let dir = dest.parent().expect("lake paths have a parent");
        let lake_err = |context: String| {
            move |source: std::io::Error| VaultError::Io {
                context: format!("lake: {context}"),
                source,
            }
        };
        fs::create_dir_all(dir).map_err(lake_err(format!("cannot create `{}`", dir.display())))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(lake_err(format!(
            "cannot create a file in `{}`",
            dir.display()
        )))?;
        // Held until the file is renamed into place: the next sync removes a temporary
        // file whose writer was killed, and only such a one.
        tmp.as_file().lock().map_err(lake_err(format!(
            "cannot lock a file in `{}`",
            dir.display()
        )))?;
        write(tmp.as_file_mut()).map_err(lake_err(format!("cannot write `{}`", dest.display())))?;
        tmp.as_file()
            .sync_all()
            .map_err(lake_err(format!("cannot fsync `{}`", dest.display())))?;
        tmp.persist(dest)
            .map_err(|e| lake_err(format!("cannot rename into `{}`", dest.display()))(e.error))?;
        if let Ok(d) = File::open(dir) {
            // Make the rename itself durable; not every platform can fsync a folder.
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Copy `src` to `dest` through a temporary file, checking the bytes' hash.
    fn copy_in(
        &self,
        src: &Path,
        hash: &str,
        name: &str,
        dest: &Path,
    ) -> Result<(), anyhow::Error> {
        let mut input = File::open(src).map_err(|source| ReadError::Io {
            path: name.to_string(),
            source,
        })?;
        // What went wrong on the input side: a read error, or bytes that changed.
        let mut refused: Option<ReadError> = None;
        let written = self.persist(dest, |tmp| {
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(n) => n,
                    Err(source) => {
                        refused = Some(ReadError::Io {
                            path: name.to_string(),
                            source,
                        });
                        return Err(std::io::Error::other("input"));
                    }
                };
                if n == 0 {
                    break;
                }
                hasher.update_rayon(&buf[..n]);
                tmp.write_all(&buf[..n])?;
            }
            if hasher.finalize().to_hex().as_str() != hash {
                refused = Some(ReadError::Invalid {
                    path: name.to_string(),
                    message: "the file changed while it was being read; sync again".into(),
                });
                return Err(std::io::Error::other("changed"));
            }
            Ok(())
        });
        match (refused, written) {
            (Some(e), _) => Err(e.into()),
            (None, w) => Ok(w?),
        }
    }
}

/// An object that does not hold what its name and the manifest say.
#[derive(Debug, Clone, PartialEq)]
pub struct Damage {
    /// The object's name (its expected hash).
    pub hash: String,
    /// What is wrong: missing, or what its bytes hash to.
    pub problem: String,
    /// The (source, original name) pairs the manifest lists for it.
    pub owners: Vec<Owner>,
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Verification {
    /// Objects checked, and their bytes.
    pub objects: usize,
    pub bytes: u64,
    /// Objects missing or damaged.
    pub damaged: Vec<Damage>,
    /// Manifest lines that cannot be read, as (line, error).
    pub manifest_damaged: Vec<(usize, String)>,
    /// Objects in the lake the manifest does not list (stored before the lake had a
    /// manifest, or by a sync that stopped before listing them). They are checked too.
    pub unlisted: Vec<String>,
}

impl Verification {
    /// Whether every object holds.
    pub fn ok(&self) -> bool {
        self.damaged.is_empty() && self.manifest_damaged.is_empty()
    }
}

impl Lake {
    /// Re-hash every object the manifest lists (only those in `only`, when given), on
    /// every core, against its name and the size the manifest records.
    pub fn verify(&self, only: Option<&HashSet<String>>) -> Result<Verification, VaultError> {
        use rayon::prelude::*;
        use std::collections::BTreeMap;
        let manifest = self.manifest()?;
        // Each object once, with everyone who stored it and the size they saw.
        let mut objects: BTreeMap<&str, (u64, Vec<Owner>)> = BTreeMap::new();
        for o in manifest.objects() {
            if only.is_some_and(|only| !only.contains(&o.hash)) {
                continue;
            }
            let entry = objects.entry(&o.hash).or_insert((o.size, Vec::new()));
            entry.1.push((o.source.clone(), o.name.clone()));
        }
        // Loads name objects too: one whose object line was lost is still checked.
        for l in manifest.loads() {
            if only.is_some_and(|only| !only.contains(&l.hash)) {
                continue;
            }
            objects
                .entry(&l.hash)
                .or_insert((u64::MAX, vec![(l.source.clone(), l.name.clone())]));
        }
        let checked: Vec<(u64, Option<Damage>)> = objects
            .par_iter()
            .map(|(hash, (size, owners))| {
                let damage = |problem: String| Damage {
                    hash: hash.to_string(),
                    problem,
                    owners: owners.clone(),
                };
                let path = self.path_of(hash);
                match hash_file(&path, hash) {
                    Err(ReadError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        (0, Some(damage("missing".into())))
                    }
                    Err(e) => (0, Some(damage(format!("cannot be read: {e}")))),
                    Ok((actual, n)) if actual != *hash => {
                        (n, Some(damage(format!("its bytes hash to {actual}"))))
                    }
                    Ok((_, n)) if *size != u64::MAX && n != *size => (
                        n,
                        Some(damage(format!("holds {n} bytes, the manifest says {size}"))),
                    ),
                    Ok((_, n)) => (n, None),
                }
            })
            .collect();
        let mut out = Verification {
            objects: checked.len(),
            manifest_damaged: manifest.damaged.clone(),
            ..Verification::default()
        };
        for (bytes, damage) in checked {
            out.bytes += bytes;
            out.damaged.extend(damage);
        }
        if only.is_none() {
            let listed: HashSet<&str> = objects.keys().copied().collect();
            let unlisted: Vec<(String, PathBuf)> = self
                .object_paths()?
                .into_iter()
                .filter_map(|path| {
                    let name = path.file_name()?.to_str()?.to_string();
                    (!listed.contains(name.as_str())).then_some((name, path))
                })
                .collect();
            // Not listed, but still named by their bytes: checked the same way.
            let checked: Vec<(u64, Option<Damage>)> = unlisted
                .par_iter()
                .map(|(name, path)| {
                    let damage = |problem: String| Damage {
                        hash: name.clone(),
                        problem,
                        owners: Vec::new(),
                    };
                    match hash_file(path, name) {
                        Ok((actual, n)) if actual == *name => (n, None),
                        Ok((actual, n)) => (n, Some(damage(format!("its bytes hash to {actual}")))),
                        Err(e) => (0, Some(damage(format!("cannot be read: {e}")))),
                    }
                })
                .collect();
            out.objects += checked.len();
            for (bytes, damage) in checked {
                out.bytes += bytes;
                out.damaged.extend(damage);
            }
            out.unlisted = unlisted.into_iter().map(|(name, _)| name).collect();
        }
        Ok(out)
    }

    /// Remove temporary files a killed copy left in the lake (`.tmp…` whose writer's lock
    /// is gone; one still locked is another process's copy in flight). Best effort.
    pub fn remove_stale_temp_files(&self) {
        // A writer holds an exclusive lock on its temporary file until it is renamed
        // into place (`persist`); a file whose lock can be taken has no writer left.
        let orphaned = |p: &Path| {
            let temp = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".tmp"));
            temp && File::open(p).is_ok_and(|f| f.try_lock().is_ok())
        };
        let Ok(dirs) = fs::read_dir(&self.root) else {
            return;
        };
        for dir in dirs.flatten().filter(|d| d.path().is_dir()) {
            let Ok(files) = fs::read_dir(dir.path()) else {
                continue;
            };
            for f in files.flatten() {
                if orphaned(&f.path()) {
                    let _ = fs::remove_file(f.path());
                }
            }
        }
    }

    /// Every object file in the lake (hidden temporary files left out).
    fn object_paths(&self) -> Result<Vec<PathBuf>, VaultError> {
        let io = |source| VaultError::Io {
            context: format!("lake: cannot list `{}`", self.root.display()),
            source,
        };
        let mut out = Vec::new();
        let dirs = match fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(e)),
        };
        for dir in dirs {
            let dir = dir.map_err(io)?.path();
            let is_shard = dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()));
            if !dir.is_dir() || !is_shard {
                continue;
            }
            for f in fs::read_dir(&dir).map_err(io)? {
                let f = f.map_err(io)?.path();
                let hidden = f
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_none_or(|n| n.starts_with('.'));
                if f.is_file() && !hidden {
                    out.push(f);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_content_hash_and_refuses_a_wrong_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("in.csv");
        fs::write(&src, b"a,b\n1,2\n").expect("write");
        let (hash, size) = hash_file(&src, "in.csv").expect("hash");
        assert_eq!(size, 8);
        assert_eq!(hash, blake3::hash(b"a,b\n1,2\n").to_hex().as_str());
        let lake = Lake::new(dir.path().join("lake"));
        let stored = lake.store(&src, &hash, "in.csv", "bank").expect("store");
        assert_eq!(fs::read(&stored).expect("read"), b"a,b\n1,2\n");
        assert!(stored.ends_with(format!("{}/{hash}", &hash[..2])));
        let wrong = "0".repeat(64);
        assert!(lake.store(&src, &wrong, "in.csv", "bank").is_err());
        assert!(!lake.path_of(&wrong).exists());
    }

    #[test]
    fn the_manifest_lists_each_object_once_per_source_and_ignores_a_cut_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("in.csv");
        fs::write(&src, b"a\n1\n").expect("write");
        let (hash, _) = hash_file(&src, "in.csv").expect("hash");
        let lake = Lake::new(dir.path().join("lake"));
        lake.store(&src, &hash, "in.csv", "bank").expect("store");
        lake.store(&src, &hash, "in.csv", "bank")
            .expect("store again");
        lake.store(&src, &hash, "copy.csv", "card")
            .expect("store for another source");
        let load = LoadEntry {
            hash: hash.clone(),
            source: "bank".into(),
            name: "in.csv".into(),
            load_ts: Utc::now().trunc_subsecs(6),
            satellite: Some("sat_bank__20260101T000000".into()),
            vault: Some("ingestor.duckdb".into()),
        };
        lake.append(&[Entry::Load(load.clone())]).expect("append");
        // A crash cut the next line short.
        let mut f = OpenOptions::new()
            .append(true)
            .open(lake.manifest_path())
            .expect("open");
        f.write_all(b"{\"kind\":\"load\",\"ha").expect("write");
        // A fresh handle reads the file again.
        let manifest = Lake::new(dir.path().join("lake"))
            .manifest()
            .expect("manifest");
        let objects: Vec<(&str, &str)> = manifest
            .objects()
            .map(|o| (o.source.as_str(), o.name.as_str()))
            .collect();
        assert_eq!(objects, [("bank", "in.csv"), ("card", "copy.csv")]);
        assert_eq!(manifest.loads().collect::<Vec<_>>(), [&load]);
        assert!(manifest.damaged.is_empty());
        // The next entry replaces the cut line rather than continuing it.
        lake.append(&[Entry::Load(load.clone())])
            .expect("append after the cut");
        let manifest = Lake::new(dir.path().join("lake"))
            .manifest()
            .expect("manifest");
        assert_eq!(manifest.loads().count(), 2);
        assert!(manifest.damaged.is_empty(), "{:?}", manifest.damaged);
    }
}
