//! File writing shared by every crate that writes results: a file appears whole or not at all.

use std::path::Path;

use crate::DataError;

/// Write `bytes` to `path` via a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    write_atomic_io(path, bytes).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        detail: format!("writing: {e}"),
    })
}

/// [`write_atomic`] with the I/O error as it is: a temporary file in the same folder, unique per
/// process and call (threads writing the same path do not share it), removed when a step fails.
pub fn write_atomic_io(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}
