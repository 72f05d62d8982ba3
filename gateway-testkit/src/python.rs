//! The official Python SDK as a test's peer: where its interpreter is.

use std::path::PathBuf;

/// The Python interpreter with the official SDK: `$LPGW_PYTHON`, else the workspace's
/// `.venv/bin/python` (`scripts/setup.sh` makes it).
///
/// # Panics
///
/// When neither exists, with how to make it: tests call this, and a missing SDK must fail
/// them loudly rather than skip.
pub fn interpreter() -> PathBuf {
    let path = std::env::var_os("LPGW_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    assert!(
        path.exists(),
        "Python with the official SDK not found at {}: run scripts/setup.sh or set LPGW_PYTHON",
        path.display()
    );
    path
}
