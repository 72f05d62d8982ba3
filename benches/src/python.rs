//! The Python side: finds the venv interpreter (env `LPGW_PYTHON`, else
//! `<workspace>/.venv/bin/python`) and runs `benches/py/trickle_bench.py` subcommands, each in a
//! fresh process (so its CPU time and peak RSS are its own), reading one JSON line back.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::de::DeserializeOwned;

/// The Python interpreter and the bench script.
#[derive(Debug, Clone)]
pub struct PythonSide {
    /// Interpreter path.
    pub python: PathBuf,
    /// `trickle_bench.py`.
    pub script: PathBuf,
}

impl PythonSide {
    /// Finds the interpreter and checks that the official SDK imports; the error says why not.
    pub fn locate() -> anyhow::Result<PythonSide> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = match std::env::var_os("LPGW_PYTHON") {
            Some(p) => PathBuf::from(p),
            None => workspace.join(".venv/bin/python"),
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/trickle_bench.py");
        if !script.exists() {
            bail!("{} is missing", script.display());
        }
        let ok = Command::new(&python)
            .args(["-c", "import livepeer_gateway, av"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            bail!(
                "{} cannot import livepeer_gateway and av (run scripts/setup.sh or set LPGW_PYTHON)",
                python.display()
            );
        }
        Ok(PythonSide { python, script })
    }

    /// Runs `trickle_bench.py ARGS` (killed after `timeout`) and parses its last stdout line.
    pub fn run<T: DeserializeOwned>(&self, args: &[String], timeout: Duration) -> anyhow::Result<T> {
        let mut child = Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", self.python.display()))?;
        let mut stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("python {} timed out after {timeout:?}", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if !status.success() {
            let tail: String = stderr
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            bail!("python {} failed ({status}):\n{tail}", args.join(" "));
        }
        let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
        serde_json::from_str(line).with_context(|| format!("python printed no result: {stdout:?}"))
    }
}

/// Arguments of `trickle_bench.py` `command` publishing the `clip_frames`-frame I420 clip in
/// `raw` (`w` x `h`) to `url`.
pub fn clip_args(command: &[&str], url: &str, raw: &Path, w: u32, h: u32, clip_frames: u64) -> Vec<String> {
    let mut a: Vec<String> = command.iter().map(|c| c.to_string()).collect();
    a.extend([
        "--url".into(),
        url.to_owned(),
        "--raw".into(),
        raw.display().to_string(),
        "--width".into(),
        w.to_string(),
        "--height".into(),
        h.to_string(),
        "--clip-frames".into(),
        clip_frames.to_string(),
    ]);
    a
}
