//! Runs an example binary (built by `cargo test` next to the test binaries) with a clean
//! environment on a free port, and stops it when dropped.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Example {
    child: Child,
    pub addr: String,
    pub base: String,
}

impl Example {
    /// The process id, e.g. to read its memory from `/proc/<pid>/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cargo test` builds examples in `target/<profile>/examples`.
fn binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

/// The binary of example `name`, or `None` and a message when it was not built (a failure
/// under `CI`).
fn built(name: &str) -> Option<PathBuf> {
    let bin = binary(name);
    if bin.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "{name} example binary not found next to the test binary"
        );
        eprintln!("skipping: build the examples first (cargo test builds them)");
    }
    bin
}

/// Starts example `name` with `vars` and waits until its port accepts connections. `None`
/// (and a message) when the binary was not built, which fails under `CI`.
///
/// The port is a free one picked here, so another process can take it before the example
/// binds it: then the example exits ("address in use") while the other process answers our
/// connect. An example that is not running once its port answers is started again on a new
/// port.
pub async fn start(name: &str, vars: &[(&str, &str)]) -> Option<Example> {
    let bin = built(name)?;
    for _ in 0..5 {
        let mut example = spawn(&bin, vars);
        let deadline = Instant::now() + Duration::from_secs(20);
        while example.is_running() && tokio::net::TcpStream::connect(&example.addr).await.is_err() {
            assert!(Instant::now() < deadline, "{name} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A bind failure ends the process at once; give it the time to.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if example.is_running() {
            return Some(example);
        }
    }
    panic!("{name} exited right after starting, five times");
}

/// Runs `bin` on a free port with `vars` (a clean environment besides them).
fn spawn(bin: &PathBuf, vars: &[(&str, &str)]) -> Example {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    // EXAMPLE_LOG=info (or debug…) shows the examples' logs, for debugging a test.
    let log = std::env::var("EXAMPLE_LOG").ok();
    cmd.env_clear()
        .env("MCP_AUTH_ADDR", &addr)
        .env("RUST_LOG", log.as_deref().unwrap_or("warn"))
        .stdout(Stdio::null())
        .stderr(if log.is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        });
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Example {
        child: cmd.spawn().unwrap(),
        base: format!("http://{addr}"),
        addr,
    }
}

/// Runs example `name` to completion with `args` and `vars` (a clean environment besides
/// them) and returns its output. `None` (and a message) when the binary was not built,
/// which fails under `CI`.
pub fn run(name: &str, args: &[&str], vars: &[(&str, &str)]) -> Option<std::process::Output> {
    let bin = built(name)?;
    let mut cmd = Command::new(bin);
    cmd.env_clear().env("RUST_LOG", "warn").args(args);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Some(cmd.output().unwrap())
}
