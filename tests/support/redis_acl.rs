//! A plain `redis-server` with an ACL user `app` (password `pw`) confined to the keys and
//! channels under `app:`, as `docs/redis-deploy.md` tells operators to set it up. The `default`
//! user stays unrestricted, for the test's own checks.

use super::redis_process::{cli, free_port, ScratchDir, ServerProcess};
use super::redis_server::available;

/// The rules of the confined user, after `ACL SETUSER app`: the documented line.
///
/// `resetkeys`/`resetchannels`/`-@all` start from nothing, so that the line means the same on a
/// user that existed before. Then: on, password `pw`, the keys and the Pub/Sub channels under
/// `app:`, and the command categories the crate's calls use:
/// - `+@read +@write`: every data command it sends (`GET`, `SET`, `MGET`, `DEL`, `EXISTS`,
///   `PTTL`, `PEXPIRE`, `PERSIST`, `SCAN`, `DBSIZE`, the list and hash commands its scripts call,
///   and the change stream's `XADD`/`XREAD`/`XRANGE`/`XGROUP`/`XINFO`);
/// - `+@transaction`: `WATCH`, `MULTI`, `EXEC`, `UNWATCH` (`update`, `transaction`, ...);
/// - `+@connection`: `PING`, `HELLO`, `CLIENT SETNAME`/`SETINFO`, ... (`AUTH` is always allowed);
/// - `+fcall +function|load`: the crate's scripts (a Functions library loaded at connect, then
///   `FCALL`), not all of `@scripting`, which holds `FUNCTION FLUSH`/`DELETE` and `EVAL` of any
///   text;
/// - `+time`: `TIME`, which the change feed's scripts read (a new stream's generation);
/// - `-@dangerous` last: takes back what `@read`/`@write` hold that no application needs
///   (`KEYS`, `SORT`, `FLUSHDB`, `FLUSHALL`, `MIGRATE`, `RESTORE`, ...).
pub const APP_RULES: &[&str] = &[
    "reset",
    "on",
    ">pw",
    "~app:*",
    "&app:*",
    "-@all",
    "+@read",
    "+@write",
    "+@transaction",
    "+@connection",
    "+fcall",
    "+function|load",
    "+time",
    "-@dangerous",
];

/// A server whose user `app` follows [`APP_RULES`].
pub struct AclServer {
    server: ServerProcess,
    _dir: ScratchDir,
}

impl AclServer {
    /// Starts one on a free loopback port; or says why not (no `redis-server` or no `redis-cli`
    /// on PATH) and returns `None`.
    pub async fn start(test: &str) -> Option<AclServer> {
        if !available("redis-server", test) || !available("redis-cli", test) {
            return None;
        }
        let dir = ScratchDir::new("acl");
        let port = free_port();
        let server =
            ServerProcess::start(dir.path(), port, &["--port".into(), port.to_string()]).await;
        let mut setuser = vec!["ACL", "SETUSER", "app"];
        setuser.extend_from_slice(APP_RULES);
        assert_eq!(cli(port, &setuser), "OK", "ACL SETUSER refused");
        Some(AclServer { server, _dir: dir })
    }

    /// The URL of user `app`: `redis://app:pw@127.0.0.1:<port>`.
    pub fn app_url(&self) -> String {
        format!("redis://app:pw@127.0.0.1:{}", self.server.port())
    }

    /// The URL of the unrestricted `default` user.
    pub fn admin_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.server.port())
    }

    /// Its port, for `redis-cli` as the `default` user.
    pub fn port(&self) -> u16 {
        self.server.port()
    }
}
