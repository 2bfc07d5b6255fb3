//! A store directory as fuzz input: a list of files, each a path under the store,
//! a length and the chunks of it that are not zero, so a store of large, mostly
//! empty segment files fits in a few kilobytes and every byte of it can be mutated.
//!
//! `"PMQA"`, then per file: `u8` path length, the path, `u32` file length,
//! `u16` chunk count, per chunk `u32` offset, `u16` length, the bytes. Paths are
//! relative, of `[A-Za-z0-9_.%|-]` components, never `..`: unpacking writes only
//! inside the directory it is given. Anything malformed ends the list.

#![allow(dead_code)]

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

const MAGIC: &[u8] = b"PMQA";
const MAX_FILE: u32 = 8 << 20;
const MAX_FILES: usize = 64;

fn safe(path: &str) -> bool {
    !path.is_empty()
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.%|-".contains(&b))
        })
}

/// Writes the files `data` describes under `dir` (which exists and is empty).
pub fn unpack(data: &[u8], dir: &Path) {
    let Some(mut rest) = data.strip_prefix(MAGIC) else {
        return;
    };
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(head)
    };
    for _ in 0..MAX_FILES {
        let Some(len) = take(1) else { return };
        let Some(path) = take(len[0] as usize) else {
            return;
        };
        let Some(size) = take(4) else { return };
        let Some(chunks) = take(2) else { return };
        let size = u32::from_be_bytes(size.try_into().unwrap()).min(MAX_FILE);
        let chunks = u16::from_be_bytes(chunks.try_into().unwrap());
        let path = String::from_utf8_lossy(path).to_string();
        let target = safe(&path).then(|| dir.join(&path));
        let mut file = target.as_ref().and_then(|p| {
            fs::create_dir_all(p.parent()?).ok()?;
            let f = fs::File::create(p).ok()?;
            f.set_len(size as u64).ok()?;
            Some(f)
        });
        for _ in 0..chunks {
            let Some(at) = take(4) else { return };
            let Some(n) = take(2) else { return };
            let at = u32::from_be_bytes(at.try_into().unwrap());
            let n = u16::from_be_bytes(n.try_into().unwrap()) as usize;
            let Some(bytes) = take(n) else { return };
            if let Some(f) = file.as_mut() {
                let end = (at as u64 + n as u64).min(size as u64);
                if (at as u64) < end {
                    let _ = f.seek(SeekFrom::Start(at as u64));
                    let _ = f.write_all(&bytes[..(end - at as u64) as usize]);
                }
            }
        }
    }
}

/// The archive of every file under `dir`, paths relative to `root`.
pub fn pack(root: &Path) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files.sort();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().to_string();
        if rel == "lock" {
            continue;
        }
        let bytes = fs::read(&f).unwrap();
        let mut chunks: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == 0 {
                i += 1;
                continue;
            }
            let start = i;
            let mut zeros = 0;
            while i < bytes.len() && i - start < 60_000 && zeros < 64 {
                zeros = if bytes[i] == 0 { zeros + 1 } else { 0 };
                i += 1;
            }
            chunks.push((start, i - zeros));
        }
        out.push(rel.len() as u8);
        out.extend_from_slice(rel.as_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&(chunks.len() as u16).to_be_bytes());
        for (a, b) in chunks {
            out.extend_from_slice(&(a as u32).to_be_bytes());
            out.extend_from_slice(&((b - a) as u16).to_be_bytes());
            out.extend_from_slice(&bytes[a..b]);
        }
    }
    out
}
