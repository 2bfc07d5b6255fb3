// The file store under Node: the file operations the engine's host backend asks
// for (wasm/src/host_fs.rs), over Node's synchronous fs, on paths relative to
// the store directory. Also the store's lock: a `lock` file made with exclusive
// create holding this process's pid, the word "host" (native processes, which
// lock the file itself, honour it while this pid lives) and when this process
// started; a lock whose process is gone, or that an earlier process with this pid
// left, is taken over.
import * as fs from "node:fs";
import { dirname, join, resolve } from "node:path";

/** Whether a process with this pid exists (signal 0 only checks). */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM"; // exists, but belongs to someone else
  }
}

/** When this process started (epoch ms; the same in every thread of it). */
const PROCESS_START = Math.round(Date.now() - process.uptime() * 1000);
/** How long an empty lock file counts as being written by its maker. */
const LOCK_WRITE_MS = 1000;

/** Blocks this thread for `ms` (waiting on a lock file being written). */
function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function missing(err) {
  return err && err.code === "ENOENT";
}

/**
 * Makes `dir` and its missing parents one level at a time, as the native store
 * does: Node 20's `mkdirSync(.., { recursive: true })` loops forever on a path
 * whose parent exists but refuses children with ENOENT (under /proc), and reports
 * ENOENT for a read-only parent instead of EROFS.
 */
function makeDirs(dir) {
  const absent = [];
  for (let d = resolve(dir); ; ) {
    try {
      fs.statSync(d);
      break;
    } catch (err) {
      if (!missing(err)) throw err;
      absent.push(d);
      const up = dirname(d);
      if (up === d) break;
      d = up;
    }
  }
  for (const d of absent.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
    }
  }
}

// Symbolic links in a store are never followed (a store may live in a shared
// place such as /tmp): files are opened with O_NOFOLLOW, and a store with a link
// among its entries is refused when it is opened.
const NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;

function refuseLinks(root) {
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop();
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (missing(err)) continue;
      throw err;
    }
    for (const d of entries) {
      const path = join(dir, d.name);
      if (d.isSymbolicLink()) {
        throw Object.assign(
          new Error(`${path} is a symbolic link: a store's files and directories are never followed through links; remove it`),
          { code: "ELOOP" },
        );
      }
      if (d.isDirectory()) stack.push(path);
    }
  }
}

/** The lock file's text and age, or null when there is none. */
function readLock(lockFile) {
  try {
    const fd = fs.openSync(lockFile, fs.constants.O_RDONLY | NOFOLLOW);
    try {
      return { text: fs.readFileSync(fd, "utf8"), age: Date.now() - fs.fstatSync(fd).mtimeMs };
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    if (missing(err)) return null;
    throw err;
  }
}

/**
 * Writes `content` to a file of this process's own next to `lockFile` and calls
 * `put(thatFile)` to put it in place; false when `put` finds a lock there (EEXIST).
 */
function placeLock(lockFile, content, put) {
  const mine = `${lockFile}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  try {
    // (Inside the try: a write that fails on a full disk leaves no file behind.)
    fs.writeFileSync(mine, content, { flag: "wx" });
    put(mine);
    return true;
  } catch (err) {
    if (err.code === "EEXIST") return false;
    throw err;
  } finally {
    fs.rmSync(mine, { force: true });
  }
}

/**
 * Replaces the stale lock whose text was `stale` with `content`, under the guard
 * file `<lock>.takeover`; false when another process holds the guard or the lock
 * changed since it was read.
 */
function takeOver(lockFile, stale, content) {
  const guard = `${lockFile}.takeover`;
  if (!placeLock(guard, `${process.pid}\n${PROCESS_START}\n`, (mine) => fs.linkSync(mine, guard))) {
    // Another process is taking over; a guard its dead maker left is removed.
    const held = readLock(guard);
    const pid = held === null ? NaN : Number.parseInt(held.text, 10);
    if (held !== null && Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
      fs.rmSync(guard, { force: true });
    }
    return false;
  }
  try {
    const now = readLock(lockFile);
    if (now === null || now.text !== stale) return false;
    // rename replaces the stale file in one step.
    return placeLock(lockFile, content, (mine) => fs.renameSync(mine, lockFile));
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

/** Most files a store keeps open at once (see closeIdle). */
const MAX_OPEN_FILES = 256;
/** Most background syncs a store runs at once (see startSync). */
const MAX_SYNCS_IN_FLIGHT = 32;

/** The host file functions of the store at `path` (made if missing). */
export function nodeHostFs(path) {
  const root = resolve(path);
  const lockFile = join(root, "lock");
  const fds = new Map(); // relative path -> open fd, the least recently used first
  // Files whose async-mode sync runs in the background (syncLater), and what the
  // first of those that failed threw, for syncPending to report.
  const syncing = new Set();
  // Per file, its background syncs not yet called back: its descriptor stays open
  // until then (closed, its number could name another file when the sync runs).
  // At most MAX_SYNCS_IN_FLIGHT run at once; the files after them wait their turn in
  // `waiting` (a flush of thousands of queues would otherwise hold a descriptor for
  // each until the event loop next runs the callbacks).
  const inFlight = new Map();
  let syncsInFlight = 0;
  const waiting = new Set();

  function startSync(rel) {
    const fd = fdOf(rel);
    inFlight.set(rel, (inFlight.get(rel) ?? 0) + 1);
    syncsInFlight++;
    fs.fdatasync(fd, (err) => {
      const left = (inFlight.get(rel) ?? 1) - 1;
      if (left > 0) inFlight.set(rel, left);
      else inFlight.delete(rel);
      syncsInFlight--;
      // A file closed meanwhile (removed, or the store closed) was synced or dropped then.
      if (err && err.code !== "EBADF" && syncFailed === null) syncFailed = err;
      for (const next of waiting) {
        if (syncsInFlight >= MAX_SYNCS_IN_FLIGHT) break;
        waiting.delete(next);
        startSync(next);
      }
    });
  }
  let syncFailed = null;
  const abs = (rel) => join(root, rel);

  function fdOf(rel) {
    let fd = fds.get(rel);
    if (fd !== undefined) {
      fds.delete(rel);
      fds.set(rel, fd);
      return fd;
    }
    if (fds.size >= MAX_OPEN_FILES) closeIdle();
    const file = abs(rel);
    makeDirs(dirname(file));
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | NOFOLLOW, 0o644);
    fds.set(rel, fd);
    return fd;
  }

  // Closes the least recently used files, down to three quarters of the cap: a store
  // of thousands of queues has a file for each, and keeps about MAX_OPEN_FILES open
  // (more only while background syncs hold theirs). A file closed with its sync left
  // to syncPending is synced there through a new descriptor, which covers what was
  // written through the old one (a sync is of the file).
  function closeIdle() {
    for (const [p, fd] of fds) {
      if (fds.size <= (MAX_OPEN_FILES * 3) / 4) break;
      if (inFlight.has(p)) continue;
      fds.delete(p);
      fs.closeSync(fd);
    }
  }

  function closeUnder(rel) {
    const under = (p) => p === rel || p.startsWith(rel.endsWith("/") ? rel : `${rel}/`);
    for (const [p, fd] of fds) {
      if (under(p)) {
        fds.delete(p);
        fs.closeSync(fd);
      }
    }
    // A closed file's sync left to syncPending goes with it (syncPending would make it again).
    for (const p of syncing) if (under(p)) syncing.delete(p);
    for (const p of waiting) if (under(p)) waiting.delete(p);
  }

  function syncDir(dir) {
    // Makes a rename durable; not every platform can open a directory.
    let fd;
    try {
      fd = fs.openSync(dir, "r");
      fs.fsyncSync(fd);
    } catch {
      // best effort
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  function writeAll(fd, data, position) {
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(fd, data, done, data.length - done, position + done);
    }
  }

  return {
    read(rel) {
      let fd;
      try {
        fd = fs.openSync(abs(rel), fs.constants.O_RDONLY | NOFOLLOW);
        return fs.readFileSync(fd);
      } catch (err) {
        if (missing(err)) return null;
        throw err;
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    },
    /** A file's length (null when it is missing), without reading it. */
    size(rel) {
      try {
        return fs.lstatSync(abs(rel)).size;
      } catch (err) {
        if (missing(err)) return null;
        throw err;
      }
    },
    /** `data` is a view of the engine's memory, valid during this call only: written at once, never kept. */
    writeAt(rel, offset, data) {
      writeAll(fdOf(rel), data, offset);
    },
    setLen(rel, len) {
      fs.ftruncateSync(fdOf(rel), len);
    },
    sync(rel) {
      fs.fdatasyncSync(fdOf(rel));
    },
    /**
     * The async-mode flush's sync: run on libuv's thread pool, so the event loop
     * never stalls on the disk (the bytes are written already, and survive this
     * process). False: not durable yet; syncPending makes it so.
     */
    syncLater(rel) {
      syncing.add(rel);
      if (syncsInFlight < MAX_SYNCS_IN_FLIGHT) startSync(rel);
      else waiting.add(rel);
      return false;
    },
    /** Makes durable now what syncLater left under way (a sync of a file covers every earlier write to it). */
    syncPending() {
      for (const rel of syncing) fs.fdatasyncSync(fdOf(rel));
      waiting.clear();
      syncing.clear();
      // Reported once these syncs are done (one that throws above leaves it for the next call).
      const failed = syncFailed;
      syncFailed = null;
      if (failed !== null) throw failed;
    },
    replace(rel, data) {
      const file = abs(rel);
      makeDirs(dirname(file));
      const tmp = `${file}.tmp`;
      // A stale temporary file (or a link planted there) goes; the new one is made
      // fresh (O_EXCL never follows a link).
      fs.rmSync(tmp, { force: true });
      const fd = fs.openSync(tmp, "wx", 0o644);
      try {
        writeAll(fd, data, 0);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, file);
      syncDir(dirname(file));
    },
    list(rel) {
      try {
        return fs.readdirSync(abs(rel), { withFileTypes: true }).map((d) => [d.name, d.isDirectory()]);
      } catch (err) {
        if (missing(err)) return [];
        throw err;
      }
    },
    remove(rel) {
      closeUnder(rel);
      fs.rmSync(abs(rel), { recursive: true, force: true });
    },
    /** The used fraction of the file system holding the store (as `df` counts it); undefined if unknown. */
    diskUsage() {
      try {
        const st = fs.statfsSync(root);
        const usable = st.blocks - st.bfree + st.bavail;
        return usable > 0 ? (st.blocks - st.bfree) / usable : undefined;
      } catch {
        return undefined;
      }
    },
    /** Undefined when this process now holds the store; the holder's pid when a live process does. */
    lock() {
      makeDirs(root);
      refuseLinks(root);
      // "host": this lock is the file alone (no flock), which native processes
      // honour while this pid lives; then when this process started, which tells
      // a lock of this process from one an earlier process with its pid left (a
      // container's pid 1 restarted).
      const content = `${process.pid}\nhost\n${PROCESS_START}\n`;
      for (let attempt = 0; attempt < 500; attempt++) {
        // Made whole under a name of its own, then linked in: the lock never exists
        // empty, and linking fails when one exists.
        if (placeLock(lockFile, content, (mine) => fs.linkSync(mine, lockFile))) return undefined;
        const held = readLock(lockFile);
        if (held === null) continue; // released meanwhile: try again
        const { text, age } = held;
        const [first, , start] = text.split(/\s+/);
        const pid = Number.parseInt(first, 10);
        if (text.trim() === "" && age < LOCK_WRITE_MS) {
          // Made a moment ago, its pid not yet written: its maker holds it.
          sleepMs(10);
          continue;
        }
        if (Number.isInteger(pid) && pid > 0) {
          if (pid !== process.pid) {
            if (alive(pid)) return pid;
          } else if (Math.abs(Number.parseInt(start, 10) - PROCESS_START) <= 100) {
            return pid; // this process holds it (another broker, or another thread)
          }
        }
        // Stale: its process is gone, or it was an earlier process with this pid.
        // Several processes may find it so at once: one at a time (the guard file)
        // replaces it, and only while it is still the stale lock it read, so none
        // replaces a lock another has just taken.
        if (takeOver(lockFile, text, content)) return undefined;
        sleepMs(2);
      }
      throw Object.assign(new Error(`could not take the lock ${lockFile}`), { code: "EBUSY" });
    },
    unlock() {
      try {
        for (const fd of fds.values()) fs.closeSync(fd);
        fds.clear();
        syncing.clear();
        waiting.clear();
        const held = fs.readFileSync(lockFile, "utf8");
        if (Number.parseInt(held, 10) === process.pid) fs.rmSync(lockFile, { force: true });
      } catch (err) {
        if (!missing(err)) console.warn("pocketmq: could not release the store's lock:", err);
      }
    },
  };
}

