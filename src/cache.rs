//! Where the binary and the examples cache what they compute once per dataset (the
//! co-expression masks): `$CCFM_CACHE_DIR`, else `~/.cache/ccfm`. The library crates take the
//! directory as an argument and read no environment.

use std::path::PathBuf;

/// `$CCFM_CACHE_DIR`, else `$HOME/.cache/ccfm`, else a directory under the system's temp dir.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CCFM_CACHE_DIR") {
        return PathBuf::from(d);
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("ccfm"),
        None => std::env::temp_dir().join("ccfm-cache"),
    }
}
