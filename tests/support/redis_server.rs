//! A `redis-server` of the test's own, on a free loopback port, killed when dropped.
//!
//! Tests that need one call [`RedisServer::start`]; when `redis-server` is not on PATH it says the
//! test is skipped (see [`available`]) and returns `None`, and the test returns early. `.ci/run`
//! installs it.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts a server on a free loopback port, or says why not and returns `None`.
    pub async fn start(test: &str) -> Option<RedisServer> {
        if !available("redis-server", test) {
            return None;
        }
        let port = free_port();
        let mut server = RedisServer { child: None, port };
        server.launch().await;
        Some(server)
    }

    /// The URL to connect to it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data is lost: it never saves).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    async fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is on PATH but does not start");
        self.child = Some(child);
        // Ready when it accepts connections; a fresh server takes a few milliseconds.
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `program` is on PATH; if not, says that `test` is skipped.
///
/// libtest captures what a passing test prints (`println!` and `eprintln!` alike), so the
/// per-test line shows only with `--nocapture`. The first test of a binary to miss `program`
/// therefore also writes one line to the process's stderr itself, which libtest does not capture:
/// a plain `cargo test` shows why the tests pass without running. With `program` on PATH nothing
/// is printed.
pub fn available(program: &str, test: &str) -> bool {
    if on_path(program) {
        return true;
    }
    println!("skipped: {program} not on PATH ({test})");
    static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(PoisonError::into_inner);
    if !said.iter().any(|name| name == program) {
        said.push(program.to_owned());
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {program} not on PATH: this binary's tests that need it pass without \
             running (the first was {test}); put {program} on PATH to run them"
        );
    }
    false
}

/// Whether `program` is an executable file in a PATH directory.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("no free loopback port")
}
