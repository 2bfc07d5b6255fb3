//! The host backend: a file store for hosts where the engine cannot reach the file
//! system itself (wasm under Node). Segments live in memory and are written through
//! to the host's files on flush; they are read back whole on open. Metadata go
//! through the host's atomic replace. The host implements [`HostFs`] over its own
//! file API, with paths relative to the store directory.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::memory::MemRegion;
use super::{segment_name, Backend, Region};

/// File operations a host provides, on paths relative to the store directory
/// (`commitlog/00000000000000000000`, `config/offsets.json`, ...).
pub trait HostFs: Send + Sync + std::fmt::Debug {
    /// The whole file, or `None` when it does not exist.
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    /// A file's length, or `None` when it does not exist. By default it is read.
    fn len(&self, path: &str) -> io::Result<Option<u64>> {
        Ok(self.read(path)?.map(|b| b.len() as u64))
    }
    /// Writes `data` at `offset`, creating the file and its directories as needed.
    fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Sets a file's length, creating it (and its directories) as needed.
    fn set_len(&self, path: &str, len: u64) -> io::Result<()>;
    /// Forces a file's data to durable storage.
    fn sync(&self, path: &str) -> io::Result<()>;
    /// Starts forcing a file's data to durable storage without waiting for it (the
    /// async-mode flush, on a host whose one thread should not stall on the disk):
    /// true when the data is durable on return, false when the sync is under way and
    /// [`HostFs::sync_pending`] must finish it before anything depends on it. By
    /// default the same as [`HostFs::sync`].
    fn sync_later(&self, path: &str) -> io::Result<bool> {
        self.sync(path).map(|()| true)
    }
    /// Makes every file `sync_later` left under way durable now, or reports what one
    /// of those syncs failed with.
    fn sync_pending(&self) -> io::Result<()> {
        Ok(())
    }
    /// Replaces a file atomically (write a temporary file, sync, rename).
    fn replace(&self, path: &str, data: &[u8]) -> io::Result<()>;
    /// The entries of a directory as (name, is a directory); empty when it is missing.
    fn list(&self, dir: &str) -> io::Result<Vec<(String, bool)>>;
    /// Removes a file or a whole directory; missing is fine.
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Takes the store's lock for this process, or names the process holding it.
    fn lock(&self) -> Result<(), u32>;
    /// Gives the lock up.
    fn unlock(&self);
    /// The used fraction (0 to 1) of the file system holding the store, if the host
    /// can tell: sends are refused above `disk_max_used_ratio`.
    fn disk_usage(&self) -> Option<f64> {
        None
    }
}

/// A segment kept in memory and written through to a host file.
struct HostRegion {
    mem: MemRegion,
    fs: Arc<dyn HostFs>,
    path: String,
}

// SAFETY: the pointer is a heap buffer owned by the region and freed only on drop; flushes copy out of it.
unsafe impl Region for HostRegion {
    fn as_ptr(&self) -> *mut u8 {
        self.mem.as_ptr()
    }
    fn len(&self) -> usize {
        self.mem.len()
    }
    fn flush(&self, from: usize, to: usize) -> io::Result<()> {
        if to <= from {
            return Ok(());
        }
        // SAFETY: [from, to) lies inside the region; flushed bytes are written data
        // (or zeros of a truncation) that no writer touches concurrently.
        let data = unsafe { std::slice::from_raw_parts(self.mem.as_ptr().add(from), to - from) };
        self.fs.write_at(&self.path, from as u64, data)?;
        self.fs.sync(&self.path)
    }
    fn flush_later(&self, from: usize, to: usize) -> io::Result<bool> {
        if to <= from {
            return Ok(true);
        }
        // SAFETY: as in `flush`.
        let data = unsafe { std::slice::from_raw_parts(self.mem.as_ptr().add(from), to - from) };
        // Written at once (the bytes then survive this process), synced in the background.
        self.fs.write_at(&self.path, from as u64, data)?;
        self.fs.sync_later(&self.path)
    }
}

pub(crate) struct HostBackend {
    fs: Arc<dyn HostFs>,
    root: String,
    /// The lock is this backend's until `unlock` (or its drop: an open that failed
    /// after taking it gives it back).
    held: AtomicBool,
}

impl HostBackend {
    /// Takes the store's lock through the host.
    pub fn open(fs: Arc<dyn HostFs>, root: &str) -> Result<HostBackend, crate::Error> {
        fs.lock().map_err(|pid| crate::Error::StoreLocked {
            path: root.to_string(),
            pid,
        })?;
        Ok(HostBackend {
            fs,
            root: root.to_string(),
            held: AtomicBool::new(true),
        })
    }

    fn seg_path(dir: &str, base: u64) -> String {
        format!("{dir}/{}", segment_name(base))
    }
}

/// `bytes` without its trailing zeros: up to and with its last byte that is not zero
/// (read eight bytes at a time).
fn used_len(bytes: &[u8]) -> usize {
    let whole = bytes.len() / 8 * 8;
    if let Some(i) = bytes[whole..].iter().rposition(|b| *b != 0) {
        return whole + i + 1;
    }
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
    match bytes[..whole].chunks_exact(8).rposition(|c| word(c) != 0) {
        Some(w) => {
            w * 8
                + bytes[w * 8..w * 8 + 8]
                    .iter()
                    .rposition(|b| *b != 0)
                    .map_or(0, |i| i + 1)
        }
        None => 0,
    }
}

impl Backend for HostBackend {
    fn is_persistent(&self) -> bool {
        true
    }

    fn list(&self, dir: &str) -> io::Result<Vec<u64>> {
        let mut out: Vec<u64> = self
            .fs
            .list(dir)?
            .into_iter()
            .filter(|(name, is_dir)| {
                !is_dir && name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit())
            })
            .filter_map(|(name, _)| name.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn list_dirs(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut out: Vec<String> = self
            .fs
            .list(dir)?
            .into_iter()
            .filter(|(_, is_dir)| *is_dir)
            .map(|(name, _)| name)
            .collect();
        out.sort();
        Ok(out)
    }

    fn open(&self, dir: &str, base: u64, size: usize, create: bool) -> io::Result<Arc<dyn Region>> {
        let path = Self::seg_path(dir, base);
        let existing = self.fs.read(&path)?;
        let mem = match existing {
            Some(bytes) => {
                let len = if size == 0 { bytes.len() } else { size };
                if len == 0 {
                    return Err(super::corrupt(format!(
                        "{}/{path}: empty segment",
                        self.root
                    )));
                }
                let mem = MemRegion::new(len.max(bytes.len()))?;
                // The region is zeroed: the file's trailing zeros (most of a queue's
                // file, the unwritten end of the last CommitLog segment) are not
                // copied, so its memory becomes resident only for what it holds.
                let used = used_len(&bytes);
                // SAFETY: the region is at least bytes.len() long and not yet shared.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), mem.as_ptr(), used) };
                mem
            }
            None if create => {
                let mem = MemRegion::new(size)?;
                self.fs.set_len(&path, size as u64)?;
                mem
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}/{path}", self.root),
                ))
            }
        };
        Ok(Arc::new(HostRegion {
            mem,
            fs: self.fs.clone(),
            path,
        }))
    }

    fn segment_len(&self, dir: &str, base: u64) -> io::Result<usize> {
        let path = Self::seg_path(dir, base);
        match self.fs.len(&path)? {
            Some(len) => Ok(len as usize),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}/{path}", self.root),
            )),
        }
    }

    fn remove(&self, dir: &str, base: u64) -> io::Result<()> {
        self.fs.remove(&Self::seg_path(dir, base))
    }

    fn remove_dir(&self, dir: &str) -> io::Result<()> {
        self.fs.remove(dir)
    }

    fn read_meta(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        self.fs.read(name)
    }

    fn write_meta(&self, name: &str, data: &[u8]) -> io::Result<()> {
        self.fs.replace(name, data)
    }

    fn remove_meta(&self, name: &str) -> io::Result<()> {
        self.fs.remove(name)
    }

    fn disk_usage(&self) -> Option<f64> {
        self.fs.disk_usage()
    }

    fn sync_pending(&self) -> io::Result<()> {
        self.fs.sync_pending()
    }

    /// Segments are held in (wasm) memory whole: keep them small.
    fn default_segment_size(&self) -> usize {
        8 << 20
    }

    fn holds_segments_whole(&self) -> bool {
        true
    }

    fn unlock(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.fs.unlock()
        }
    }
}

impl Drop for HostBackend {
    fn drop(&mut self) {
        self.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::used_len;

    #[test]
    fn used_len_drops_trailing_zeros_only() {
        let mut buf = vec![0u8; 100];
        assert_eq!(used_len(&buf), 0);
        for at in [0, 1, 7, 8, 9, 50, 63, 64, 98, 99] {
            buf.fill(0);
            buf[at] = 1;
            for start in 0..8 {
                let b = &buf[start.min(at)..];
                assert_eq!(used_len(b), at - start.min(at) + 1, "at {at}, from {start}");
            }
        }
        assert_eq!(used_len(b"ab\0c\0\0"), 4);
        assert_eq!(used_len(b""), 0);
    }
}
