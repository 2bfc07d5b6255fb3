//! The file backend: each segment is a preallocated file named by its 20-digit start
//! offset and mapped into memory (its blocks allocated before it is mapped, or, for
//! a ConsumeQueue's, a chunk at a time before an append writes into it, so a full
//! disk is an error on the append that needs room, never a signal); metadata are small files replaced atomically (temp,
//! fsync, rename, fsync of the directory). A lock file makes one process the owner
//! of the directory: a second open fails at once, naming the holder's pid.
//!
//! Symbolic links are never followed: a store with a link among its entries is
//! refused at open, every file is opened with `O_NOFOLLOW`, and directories made
//! later are checked, so nothing planted in a shared place redirects a write.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::MmapRaw;

use super::{segment_name, Backend, Region};

struct FileRegion {
    map: MmapRaw,
    /// A CommitLog segment's file: its syncs go through the descriptor
    /// (`fdatasync`), which costs less here than `msync` of the mapped range and
    /// makes the same bytes durable (the mapping is the file's page cache). Other
    /// segments (a ConsumeQueue's: a store has one or more per queue) sync through
    /// the mapping and keep no descriptor, so a store of thousands of queues stays
    /// within the process's open-file limit (1,024 by default on Linux).
    file: Option<File>,
    /// A ConsumeQueue's segment gets its disk blocks as it fills (`allocate`), a
    /// chunk at a time, instead of 5.7 MiB at once: a store of many small queues
    /// stays small on disk. The file, to open for each chunk.
    grows: Option<PathBuf>,
}

/// How much of a growing segment one allocation gives disk blocks (13,107 entries
/// of a ConsumeQueue).
const CHUNK: usize = 256 << 10;

// SAFETY: the pointer is a shared mapping of the whole file, kept until the region drops; madvise(DONTNEED) on it keeps the data.
unsafe impl Region for FileRegion {
    fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn flush(&self, from: usize, to: usize) -> io::Result<()> {
        if to > from {
            match &self.file {
                Some(file) => file.sync_data()?,
                None => self.map.flush_range(from, to - from)?,
            }
        }
        Ok(())
    }
    fn allocate(&self, from: usize, to: usize) -> io::Result<usize> {
        let Some(path) = &self.grows else {
            return Ok(self.map.len());
        };
        let upto = to.div_ceil(CHUNK).saturating_mul(CHUNK).min(self.map.len());
        if upto > from {
            let file = no_follow()
                .write(true)
                .open(path)
                .map_err(|e| at(path, e))?;
            allocate_range(&file, from as u64, upto as u64).map_err(|e| at(path, e))?;
        }
        Ok(upto)
    }
    fn release_range(&self, from: usize, to: usize) {
        // madvise works on whole pages: round inwards to 4 KiB.
        let from = (from + 4095) & !4095;
        let to = to & !4095;
        if to <= from {
            return;
        }
        // SAFETY: a shared file mapping; MADV_DONTNEED only unmaps pages from this
        // process, the page cache keeps the data (dirty pages included) and later
        // reads fault it back in.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
        };
    }
}

/// Segments as files under a directory this process has locked.
pub(crate) struct FileBackend {
    root: PathBuf,
    lock: parking_lot::Mutex<Option<File>>,
    /// The segment being prepared in the background, if any (one at a time).
    preparing: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The pid a lock file names (its first word).
fn holder_pid(text: &str) -> Option<u32> {
    text.split_whitespace().next()?.parse().ok()
}

/// The pid of a host that holds the store by the lock file's content alone
/// (`<pid>` then `host`), if the file says so.
fn host_holder(text: &str) -> Option<u32> {
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    (words.next() == Some("host")).then_some(pid)
}

/// Whether process `pid` exists (signal 0 checks without sending anything).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl FileBackend {
    /// Opens (creating) `root` and takes its lock. Fails with `WouldBlock` carrying the
    /// holder's pid in the message when another process owns it.
    pub fn open(root: &Path) -> Result<FileBackend, crate::Error> {
        fs::create_dir_all(root).map_err(|e| at(root, e))?;
        refuse_links(root)?;
        let lock_path = root.join("lock");
        let mut lock = no_follow()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| at(&lock_path, e))?;
        let locked = |pid: u32| crate::Error::StoreLocked {
            path: root.display().to_string(),
            pid,
        };
        let mut held = String::new();
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let _ = lock.read_to_string(&mut held);
                return Err(locked(holder_pid(&held).unwrap_or(0)));
            }
            Err(fs::TryLockError::Error(e)) => return Err(at(&lock_path, e).into()),
        }
        // A host that cannot take this lock (Node's file store) holds the store by
        // the file's content instead: its pid, then "host". Its process alive, the
        // store is its own.
        let _ = lock.read_to_string(&mut held);
        if let Some(pid) = host_holder(&held) {
            if pid != std::process::id() && process_alive(pid) {
                return Err(locked(pid));
            }
        }
        let mut run = || -> io::Result<()> {
            lock.set_len(0)?;
            lock.seek(io::SeekFrom::Start(0))?;
            write!(lock, "{}", std::process::id())?;
            lock.sync_data()
        };
        run().map_err(|e| at(&lock_path, e))?;
        Ok(FileBackend {
            root: root.to_path_buf(),
            lock: parking_lot::Mutex::new(Some(lock)),
            preparing: parking_lot::Mutex::new(None),
        })
    }

    fn seg_path(&self, dir: &str, base: u64) -> PathBuf {
        self.root.join(dir).join(segment_name(base))
    }

    /// Fails when a part of `dir` below the root is a symbolic link.
    fn check_dir(&self, dir: &Path) -> io::Result<()> {
        let Ok(rel) = dir.strip_prefix(&self.root) else {
            return Ok(());
        };
        let mut at = self.root.clone();
        for part in rel.components() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(io::Error::other(linked(&at).to_string()))
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Makes `dir` (under the root) one level at a time, refusing any part of it
    /// below the root that is a symbolic link (planted since open): nothing is
    /// ever created through a link.
    fn make_dir(&self, dir: &Path) -> io::Result<()> {
        let Ok(rel) = dir.strip_prefix(&self.root) else {
            return Err(io::Error::other(format!(
                "{} is outside the store",
                dir.display()
            )));
        };
        let mut at = self.root.clone();
        for part in rel.components() {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(io::Error::other(linked(&at).to_string()))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&at) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Open options that never follow a symbolic link in the last component of a path
/// (`O_NOFOLLOW`): the store's files are its own, whatever someone plants in the
/// directory (which may be a shared place, such as /tmp).
fn no_follow() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.custom_flags(libc::O_NOFOLLOW);
    o
}

/// The refusal of a store entry that is a symbolic link.
fn linked(path: &Path) -> crate::Error {
    crate::Error::StoreCorrupted(format!(
        "{} is a symbolic link: a store's files and directories are never followed \
         through links; remove it",
        path.display()
    ))
}

/// Fails when any entry under `root` (not `root` itself: that may be a link the
/// user made) is a symbolic link.
fn refuse_links(root: &Path) -> Result<(), crate::Error> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                return Err(linked(&entry.path()));
            }
            if kind.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Gives `file` (now `len` bytes) real disk blocks up to `size` bytes, so no write
/// through its mapping can fault for want of space (a full disk then fails here,
/// as `DiskFull`, instead of killing the process with SIGBUS later): `fallocate`,
/// or zeros written where the file system has no `fallocate`.
fn allocate(file: &File, len: u64, size: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let Ok(size_arg) = libc::off_t::try_from(size) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: fallocate on an open, writable file descriptor owned by `file`.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size_arg) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) {
            return Err(err);
        }
    }
    write_zeros(file, len, size)
}

/// Gives `[from, to)` of `file` disk blocks (its length stays): `fallocate`, or zeros
/// written where the file system has none. Only for a range nothing was written to
/// yet (at or above a segment's write position), which the zeros leave as it was.
fn allocate_range(file: &File, from: u64, to: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (
            libc::off_t::try_from(from),
            libc::off_t::try_from(to - from),
        ) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: fallocate on an open, writable file descriptor owned by `file`.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) {
            return Err(err);
        }
    }
    write_zeros(file, from, to)
}

/// Whether a file has fewer disk blocks than its length needs (holes).
fn sparse(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.blocks().saturating_mul(512) < meta.len()
}

/// Writes zeros over `[from, to)` of `file` (which grows to `to`) and syncs them.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_data()
}

/// Opens (creating) the segment file at `path` and gives it at least `size` bytes
/// with disk blocks; `grows`: `size` bytes long with only its first chunk allocated
/// (a ConsumeQueue's: see `FileRegion::grows`; one made ahead of need then takes a
/// batch without allocating). A file this call created and could not size (a full
/// disk) is removed again, so no segment is left behind cut short.
fn create_segment(path: &Path, size: usize, grows: bool) -> io::Result<File> {
    let f = no_follow()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    let len = f.metadata()?.len();
    if len < size as u64 {
        let sized = match (grows, len) {
            (false, _) => allocate(&f, len, size as u64),
            (true, 0) => f
                .set_len(size as u64)
                .and_then(|()| allocate_range(&f, 0, CHUNK.min(size) as u64)),
            // (A file cut short keeps what it holds; appends allocate past it.)
            (true, _) => f.set_len(size as u64),
        };
        if let Err(e) = sized {
            if len == 0 {
                let _ = fs::remove_file(path);
            }
            return Err(e);
        }
    }
    Ok(f)
}

/// `e` with the path it happened at, so a message such as "Permission denied" says
/// which file; its kind stays (callers match on it).
fn at(path: &Path, e: io::Error) -> io::Error {
    let shown = path.display().to_string();
    if e.to_string().contains(&shown) {
        return e;
    }
    io::Error::new(e.kind(), format!("{shown}: {e}"))
}

impl Backend for FileBackend {
    fn is_persistent(&self) -> bool {
        true
    }

    fn list(&self, dir: &str) -> io::Result<Vec<u64>> {
        let path = self.root.join(dir);
        let run = || -> io::Result<_> {
            self.check_dir(&path)?;
            let mut out = Vec::new();
            let entries = match fs::read_dir(&path) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(base) = name.parse() {
                        out.push(base);
                    }
                }
            }
            out.sort_unstable();
            Ok(out)
        };
        run().map_err(|e| at(&path, e))
    }

    fn list_dirs(&self, dir: &str) -> io::Result<Vec<String>> {
        let path = self.root.join(dir);
        let run = || -> io::Result<_> {
            let mut out = Vec::new();
            self.check_dir(&self.root.join(dir))?;
            let entries = match fs::read_dir(self.root.join(dir)) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    if let Some(name) = entry.file_name().to_str() {
                        out.push(name.to_string());
                    }
                }
            }
            out.sort();
            Ok(out)
        };
        run().map_err(|e| at(&path, e))
    }

    fn open(&self, dir: &str, base: u64, size: usize, create: bool) -> io::Result<Arc<dyn Region>> {
        let path = self.seg_path(dir, base);
        // A ConsumeQueue's segment is written from its start, an entry at a time:
        // it gets its blocks as it fills (see `FileRegion::grows`).
        let grows = dir.starts_with("consumequeue/");
        let run = || -> io::Result<Arc<dyn Region>> {
            let file = if create {
                let parent = self.root.join(dir);
                self.make_dir(&parent)?;
                let f = create_segment(&path, size, grows)?;
                if f.metadata()?.len() > size as u64 {
                    f.set_len(size as u64)?;
                }
                sync_dir(&parent)?;
                f
            } else {
                self.check_dir(&self.root.join(dir))?;
                no_follow().read(true).write(true).open(&path)?
            };
            let meta = file.metadata()?;
            if meta.len() == 0 {
                // Only a creation cut short (a crash between create and allocation)
                // leaves an empty segment; it holds no data, so give it its size.
                if size == 0 {
                    return Err(super::corrupt(format!("{}: empty segment", path.display())));
                }
                allocate(&file, 0, size as u64)?;
            } else if sparse(&meta) && !grows {
                // A segment with holes (Node's file store sizes its files without
                // allocating them): a write into a hole on a full disk would kill the
                // process with SIGBUS, so its blocks are allocated now (DiskFull here
                // instead, with nothing written). A growing segment's holes are
                // expected: its appends allocate.
                allocate(&file, meta.len(), meta.len())?;
            }
            let map = MmapRaw::map_raw(&file)?;
            let file = (dir == crate::commitlog::DIR).then_some(file);
            let grows = grows.then(|| path.clone());
            Ok(Arc::new(FileRegion { map, file, grows }))
        };
        run().map_err(|e| at(&path, e))
    }

    /// From the file's metadata: opening it would map it.
    fn segment_len(&self, dir: &str, base: u64) -> io::Result<usize> {
        let path = self.seg_path(dir, base);
        let meta = fs::symlink_metadata(&path).map_err(|e| at(&path, e))?;
        Ok(meta.len() as usize)
    }

    fn remove(&self, dir: &str, base: u64) -> io::Result<()> {
        let path = self.seg_path(dir, base);
        let run = || -> io::Result<_> {
            match fs::remove_file(self.seg_path(dir, base)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        };
        run().map_err(|e| at(&path, e))
    }

    fn remove_dir(&self, dir: &str) -> io::Result<()> {
        let path = self.root.join(dir);
        let run = || -> io::Result<_> {
            match fs::remove_dir_all(&path) {
                Ok(()) => sync_dir(path.parent().unwrap_or(&self.root)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        };
        run().map_err(|e| at(&path, e))
    }

    fn read_meta(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let path = self.root.join(name);
        let run = || -> io::Result<_> {
            let mut f = match no_follow().read(true).open(self.root.join(name)) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut out = Vec::new();
            f.read_to_end(&mut out)?;
            Ok(Some(out))
        };
        run().map_err(|e| at(&path, e))
    }

    fn write_meta(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let path = self.root.join(name);
        let run = || -> io::Result<_> {
            let parent = path.parent().unwrap_or(&self.root).to_path_buf();
            self.make_dir(&parent)?;
            let tmp = path.with_extension("tmp");
            // A stale temporary file (or a link planted in its place) goes first; the
            // new one is created fresh, never through a link (O_EXCL).
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            {
                let mut f = no_follow().write(true).create_new(true).open(&tmp)?;
                f.write_all(data)?;
                f.sync_all()?;
            }
            // (rename replaces a link at `path` itself, never what it points to.)
            fs::rename(&tmp, &path)?;
            sync_dir(&parent)
        };
        run().map_err(|e| at(&path, e))
    }

    fn remove_meta(&self, name: &str) -> io::Result<()> {
        let path = self.root.join(name);
        let run = || -> io::Result<_> {
            match fs::remove_file(self.root.join(name)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => {
                    sync_dir(&self.root)?;
                    Ok(())
                }
            }
        };
        run().map_err(|e| at(&path, e))
    }

    fn default_segment_size(&self) -> usize {
        64 << 20
    }

    fn prepare(&self, dir: &str, base: u64, size: usize) {
        let mut preparing = self.preparing.lock();
        if preparing.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let parent = self.root.join(dir);
        let path = self.seg_path(dir, base);
        if self.make_dir(&parent).is_err() {
            return;
        }
        *preparing = crate::runtime::spawn_task("pocketmq-allocate", move || {
            // Create the file and fault its pages into the page cache writable (the
            // kernel zeroes them here rather than in the writer's page faults).
            let prepared = (|| -> io::Result<()> {
                let f = create_segment(&path, size, false)?;
                let map = MmapRaw::map_raw(&f)?;
                map.advise(memmap2::Advice::PopulateWrite)?;
                // Keep the pages in the cache, not in this process's resident set.
                // SAFETY: a shared file mapping; dropping pages from it keeps the data.
                unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) }
            })();
            let _ = prepared;
        });
    }

    fn unlock(&self) {
        // A segment still being prepared is finished before the store is let go.
        if let Some(h) = self.preparing.lock().take() {
            let _ = h.join();
        }
        if let Some(f) = self.lock.lock().take() {
            let _ = f.unlock();
        }
    }

    fn disk_usage(&self) -> Option<f64> {
        let path = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: statvfs is plain data for which all-zero bytes are a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: path is a valid C string and st a properly sized out-parameter.
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 || st.f_blocks == 0 {
            return None;
        }
        // As df counts it: blocks in use over those in use plus those this process
        // may still take (blocks reserved for root, or otherwise held back, are
        // neither), so 100% is where writes start failing.
        let used = st.f_blocks.saturating_sub(st.f_bfree) as f64;
        let usable = used + st.f_bavail as f64;
        (usable > 0.0).then(|| used / usable)
    }
}
