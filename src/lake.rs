//! The lake: every input kept untouched, named by the BLAKE3 hash of its bytes.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{ReadError, VaultError};

/// A content-addressed folder of input files.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
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
        Lake { root }
    }

    /// Where the file with this hash lives: `<root>/<first two hex>/<hash>`.
    pub fn path_of(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..2]).join(hash)
    }

    /// Copy `src` into the lake under `hash`, atomically: a temporary file in the same
    /// folder, fsync, rename, fsync the folder. The bytes are hashed again while copying,
    /// so a file that changed since it was hashed is refused rather than misfiled.
    pub fn store(&self, src: &Path, hash: &str, name: &str) -> Result<PathBuf, anyhow::Error> {
        let dest = self.path_of(hash);
        if dest.is_file() {
            return Ok(dest);
        }
        let dir = dest.parent().expect("lake paths have a parent");
        let lake_err = |context: String| {
            move |source: std::io::Error| VaultError::Io {
                context: format!("lake: {context}"),
                source,
            }
        };
        fs::create_dir_all(dir).map_err(lake_err(format!("cannot create `{}`", dir.display())))?;
        let mut input = File::open(src).map_err(|source| ReadError::Io {
            path: name.to_string(),
            source,
        })?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(lake_err(format!(
            "cannot create a file in `{}`",
            dir.display()
        )))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf).map_err(|source| ReadError::Io {
                path: name.to_string(),
                source,
            })?;
            if n == 0 {
                break;
            }
            hasher.update_rayon(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(lake_err(format!("cannot write `{}`", dest.display())))?;
        }
        if hasher.finalize().to_hex().as_str() != hash {
            return Err(ReadError::Invalid {
                path: name.to_string(),
                message: "the file changed while it was being read; sync again".into(),
            }
            .into());
        }
        tmp.as_file()
            .sync_all()
            .map_err(lake_err(format!("cannot fsync `{}`", dest.display())))?;
        tmp.persist(&dest)
            .map_err(|e| lake_err(format!("cannot rename into `{}`", dest.display()))(e.error))?;
        if let Ok(d) = File::open(dir) {
            // Make the rename itself durable; not every platform can fsync a folder.
            let _ = d.sync_all();
        }
        Ok(dest)
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
        let stored = lake.store(&src, &hash, "in.csv").expect("store");
        assert_eq!(fs::read(&stored).expect("read"), b"a,b\n1,2\n");
        assert!(stored.ends_with(format!("{}/{hash}", &hash[..2])));
        let wrong = "0".repeat(64);
        assert!(lake.store(&src, &wrong, "in.csv").is_err());
        assert!(!lake.path_of(&wrong).exists());
    }
}
