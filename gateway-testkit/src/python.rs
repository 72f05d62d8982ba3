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

/// Runs `script` with `args` under [`interpreter`] on a blocking thread and answers the JSON of
/// its last stdout line (the peer scripts' report).
///
/// # Panics
///
/// When the script fails or its last line is not JSON, with its output: a test's peer failing
/// is the test failing.
pub async fn run_peer(script: PathBuf, args: Vec<String>) -> serde_json::Value {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(interpreter()).arg(script).args(args).output()
    })
    .await
    .expect("the peer's thread")
    .expect("the peer starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("the peer's last line is not JSON ({e}): {last:?}"))
}
