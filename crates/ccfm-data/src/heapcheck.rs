//! A pre-check of an HDF5 file's global heap collections (where variable-length strings live),
//! before the HDF5 library reads them.
//!
//! The library decodes a collection object by object, advancing by each object's stored size.
//! A damaged collection whose free-space object (index 0) has size 0, or whose object size is
//! so large that the aligned step wraps to 0, makes that loop stand still forever (HDF5 2.x
//! `H5HG__cache_heap_deserialize`), so a one-byte fault would hang `ccfm` instead of failing. The walk here mirrors the library's and refuses such a file with an
//! error; every other defect is left to the library, which reports it.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: &[u8; 4] = b"GCOL";
/// Collections are at least this large (`H5HG_MINSIZE`).
const MIN_SIZE: u64 = 4096;
/// Collections larger than this are not walked (the library reads them; none of ours are).
const MAX_WALK: u64 = 64 << 20;
const CHUNK: usize = 16 << 20;

/// Where the walk found a collection the library would loop on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckHeap {
    /// Byte offset of the collection in the file.
    pub offset: u64,
    /// Byte offset of the object of size 0.
    pub object: u64,
}

/// Walk every global heap collection of the HDF5 file `path`. `Ok(None)` when none would stall
/// the library (or the file is not HDF5 with 8-byte lengths, which the walk does not decode).
pub fn find_stuck_heap(path: &Path) -> std::io::Result<Option<StuckHeap>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut head = [0u8; 16];
    if file.read(&mut head)? < 16 || &head[..8] != b"\x89HDF\r\n\x1a\n" {
        return Ok(None);
    }
    // Size of lengths: byte 14 in superblock versions 0 and 1, byte 10 in versions 2 and 3.
    let lengths = match head[8] {
        0 | 1 => head[14],
        _ => head[10],
    };
    if lengths != 8 {
        return Ok(None);
    }
    let mut buf = vec![0u8; CHUNK + MAGIC.len()];
    let mut start = 0u64;
    while start < len {
        let n = file.read_at(&mut buf, start)?;
        if n == 0 {
            break;
        }
        for hit in memchr::memmem::find_iter(&buf[..n], MAGIC) {
            let offset = start + hit as u64;
            if hit >= CHUNK && start + (CHUNK as u64) < len {
                continue; // found again at the start of the next chunk
            }
            if let Some(stuck) = walk(&file, offset, len)? {
                return Ok(Some(stuck));
            }
        }
        start += CHUNK as u64;
    }
    Ok(None)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Walk the collection at `offset` as the library does; `Some` when an object of size 0 would
/// stop it advancing.
fn walk(file: &File, offset: u64, len: u64) -> std::io::Result<Option<StuckHeap>> {
    let mut hdr = [0u8; 16];
    if offset + 16 > len || file.read_at(&mut hdr, offset)? < 16 || hdr[4] != 1 {
        return Ok(None);
    }
    let size = u64_at(&hdr, 8);
    if !(MIN_SIZE..=MAX_WALK).contains(&size) || offset + size > len {
        return Ok(None); // the library refuses these itself
    }
    let mut heap = vec![0u8; size as usize];
    file.read_exact_at(&mut heap, offset)?;
    const OBJ_HDR: usize = 16;
    let end = heap.len();
    let mut p = 16usize;
    while p < end {
        if p + OBJ_HDR > end {
            break; // trailing free space, consumed whole
        }
        let idx = u16::from_le_bytes([heap[p], heap[p + 1]]);
        let obj = u64_at(&heap, p + 8);
        // The library's arithmetic, wrapping as C's size_t does: a huge stored size can wrap
        // the step to 0 as well.
        let need = if idx > 0 {
            (OBJ_HDR as u64).wrapping_add(obj.wrapping_add(7) / 8 * 8)
        } else {
            obj
        };
        if need == 0 {
            return Ok(Some(StuckHeap {
                offset,
                object: offset + p as u64,
            }));
        }
        if need > (end - p) as u64 {
            break; // runs past the collection: the library reports it
        }
        p += need as usize;
    }
    Ok(None)
}
