//! A `redis-server` process started with arguments of the caller's, in a scratch directory of its
//! own (its log, its certificates, its cluster file), killed by its pid and its directory removed
//! when dropped. The building block of [`redis_tls`](super::redis_tls) and
//! [`redis_cluster`](super::redis_cluster); [`redis_server`](super::redis_server) keeps its own
//! plain server.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A scratch directory under the system's temporary one, removed when dropped.
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// A new empty directory whose name says what it is for.
    pub fn new(what: &str) -> ScratchDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ephemeral-kv-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("cannot create a scratch directory");
        ScratchDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to the file `name` in it and returns the file's path as text.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path.join(name);
        std::fs::write(&path, contents).expect("cannot write in the scratch directory");
        path.to_string_lossy().into_owned()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running `redis-server`, listening on `port` of 127.0.0.1.
pub struct ServerProcess {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `redis-server` with `args` (after `--bind 127.0.0.1 --save "" --appendonly no
    /// --dir <dir> --logfile <dir>/redis-<port>.log`) and waits until `port` accepts connections.
    /// Panics, with the end of the server's log, when it exits or does not listen within 5 s.
    pub async fn start(dir: &Path, port: u16, args: &[String]) -> ServerProcess {
        let log = dir.join(format!("redis-{port}.log"));
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is on PATH but does not start");
        let mut server = ServerProcess {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "redis-server on port {port} exited ({status}):\n{}",
                    server.log_tail()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            if Instant::now() > deadline {
                panic!(
                    "redis-server did not listen on port {port} within 5 s:\n{}",
                    server.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it was killed.
    pub fn is_killed(&self) -> bool {
        self.child.is_none()
    }

    /// Kills it (by its pid, `SIGKILL`) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of its log, for a failure's message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free loopback port")
}

/// Runs `redis-cli` with `args` (blocking: for setup and checks, not for the calls under test).
pub fn redis_cli(args: &[&str]) -> Output {
    Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli is on PATH but does not run")
}

/// `redis-cli -p <port> <args>`'s standard output, trimmed; panics when it fails to run.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_with(&[], port, args)
}

/// [`cli`] with `redis-cli` options of its own in front (`--tls --cacert <file>`, say).
pub fn cli_with(options: &[&str], port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut all = options.to_vec();
    all.extend(["-h", "127.0.0.1", "-p", &port]);
    all.extend_from_slice(args);
    let output = redis_cli(&all);
    assert!(
        output.status.success(),
        "redis-cli {all:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
