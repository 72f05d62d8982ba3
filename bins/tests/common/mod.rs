//! Helpers for tests that run the built `livepeer-gateway` binary: run it with a deadline, and
//! start a `local-network` child to point it at.
#![allow(dead_code)] // each test binary uses a different subset

pub mod serve_node;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished run printed.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertions on what the user saw.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs the binary with `args` (and `stdin`), killing it after `limit`.
pub fn run_with(args: &[&str], stdin: Option<&[u8]>, envs: &[(&str, &str)], limit: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(args)
        .envs(envs.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn livepeer-gateway");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    wait_with(child, args, limit)
}

/// Starts the binary with `args` and a piped stdin for the caller to feed (take it with
/// `child.stdin.take()`); finish with [`wait_with`].
pub fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn livepeer-gateway")
}

/// Waits for `child` (started with `args`) to exit, killing it after `limit`, and collects
/// what it printed.
pub fn wait_with(mut child: Child, args: &[&str], limit: Duration) -> Run {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("livepeer-gateway {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_thread.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_thread.join().unwrap()).into_owned(),
    }
}

/// Runs the binary with `args`, 30 s at most.
pub fn run(args: &[&str]) -> Run {
    run_with(args, None, &[], Duration::from_secs(30))
}

/// A `local-network --json` child process (plaintext unless started with
/// [`LocalNet::start_tls`]), killed on drop.
pub struct LocalNet {
    child: Child,
    /// Its JSON line.
    pub urls: serde_json::Value,
}

impl LocalNet {
    /// Starts it on free ports; `extra` adds flags such as `--trickle-autocreate`.
    pub fn start(extra: &[&str]) -> LocalNet {
        let mut args = vec!["--plaintext"];
        args.extend_from_slice(extra);
        LocalNet::start_tls(&args)
    }

    /// Like [`LocalNet::start`], serving TLS with a self-signed certificate unless `extra`
    /// says `--plaintext`.
    pub fn start_tls(extra: &[&str]) -> LocalNet {
        let mut child = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
            .args(["local-network", "--json", "--listen", "127.0.0.1:0"])
            .args(["--signer-listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn local-network");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let urls = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        LocalNet { child, urls }
    }

    /// A URL from its JSON line.
    pub fn url(&self, key: &str) -> String {
        self.urls[key].as_str().unwrap_or_else(|| panic!("no {key}")).trim_end_matches('/').to_owned()
    }
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Frames PyAV (the official Python SDK's decoder library, in the venv `scripts/setup.sh`
/// makes, or `$LPGW_PYTHON`) decodes from `path`; it fails the test on any decoding error.
pub fn pyav_frames(path: &std::path::Path) -> u64 {
    let python = gateway_testkit::python::interpreter();
    let script = "import av,sys\nc=av.open(sys.argv[1])\nn=0\nfor f in c.decode(video=0): n+=1\nprint(n)";
    let out = Command::new(python).args(["-c", script]).arg(path).output().expect("the venv's python runs");
    assert!(out.status.success(), "PyAV: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Frames ffprobe reads from `path`, failing the test on any complaint at warning level.
pub fn ffprobe_frames(path: &std::path::Path) -> u64 {
    let probe = Command::new("ffprobe")
        .args(["-v", "warning", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "default=nw=1:nk=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/setup.sh installs it)");
    let warnings = String::from_utf8_lossy(&probe.stderr);
    assert!(warnings.trim().is_empty(), "ffprobe complains about {}: {warnings}", path.display());
    String::from_utf8_lossy(&probe.stdout).lines().next().unwrap_or_default().trim().parse().unwrap()
}

/// `seconds` of ffmpeg's test source at 320x180 and 30 fps as H.264 (a keyframe each second)
/// with AAC audio, in MPEG-TS; `video: false` makes it audio only.
pub fn mpegts(seconds: u32, video: bool) -> Vec<u8> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    if video {
        cmd.args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"]);
        cmd.args(["-c:v", "libx264", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0"]);
    }
    let out = cmd
        .args(["-c:a", "aac", "-t", &seconds.to_string(), "-f", "mpegts", "-"])
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
