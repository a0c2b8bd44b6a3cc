//! The Lua scripts of the Redis data layout (`src/redis/lua/`; the layout is written down in
//! `docs/redis.md`, "The data layout").
//!
//! Every call that names one key (and `mget`, `mset`) is one of these scripts, run whole by the
//! server: Redis runs a function with no other client's command in between, which is what the
//! owner task's single-threaded loop gives in-process. Each script opens with its KEYS, ARGV,
//! reply and error replies; `prelude.lua` holds what they share (the strict JSON checker, the
//! list and id-index helpers, the change stream's `XADD`).
//!
//! A script checks, and decodes what it must decode, before its first write (Redis does not roll
//! back a script that fails half-way), so a failed call changes nothing. Errors the caller must
//! see as a [`KvError`] come back as error replies with our own codes (`KVWRONGTYPE`,
//! `KVOVERFLOW`, `KVNOTJSON`, `KVTOODEEP`, `KVFOREIGN`, `KVBADARG`), which [`exec`](super::exec)
//! maps.
//!
//! The scripts are one Redis Functions library (Redis 7.0+): the prelude, then each script's body
//! as a Lua function `(KEYS, ARGV)`, registered under a name that carries the library's content
//! hash (`ekv_<hash>_set`), so two versions of the crate can share a server. [`load`] sends it
//! with `FUNCTION LOAD REPLACE` when a handle connects; each call is then `FCALL <name>`. A
//! library is compiled once and its helpers defined once, where an `EVALSHA` of prelude + script
//! ran the 400-line prelude (defining every helper again) on every call: about 3 us of server
//! time per call, a quarter of `set`'s (docs/redis.md, "Numbers"). A server that lost its
//! functions (a restart without persistence, `FUNCTION FLUSH`) answers `Function not found`; the
//! owner task then loads the library again and resends the refused commands, as for `NOSCRIPT`
//! ([`is_not_loaded`]).

use redis::aio::ConnectionLike;
use redis::{Cmd, Script, ServerError};

use crate::error::KvError;

/// One script of the library: what `FCALL` names.
#[derive(Clone)]
pub(crate) struct Function {
    name: String,
}

impl Function {
    /// `FCALL <name>`: the caller adds the key count, the keys and the arguments.
    pub(crate) fn call(&self) -> Cmd {
        let mut call = redis::cmd("FCALL");
        call.arg(&self.name);
        call
    }
}

/// What a script may do beyond the default (a function that writes and is refused whole while
/// the server is over `maxmemory`).
#[derive(Clone, Copy)]
enum Flags {
    /// Writes, and may add data: refused whole when the server is out of memory.
    Writes,
    /// Reads only (`no-writes`): runs out of memory and on a read-only replica too.
    Reads,
    /// Removes or retimes only (`allow-oom`): runs out of memory, as `DEL` does, so a full
    /// server can still be emptied (a change stream entry may still be added).
    Frees,
}

impl Flags {
    fn lua(self) -> &'static str {
        match self {
            Flags::Writes => "{}",
            Flags::Reads => "{'no-writes'}",
            Flags::Frees => "{'allow-oom'}",
        }
    }
}

/// Every script: its name, its file and what it may do.
const SCRIPTS: [(&str, &str, Flags); 18] = [
    ("get", include_str!("lua/get.lua"), Flags::Reads),
    ("mget", include_str!("lua/mget.lua"), Flags::Reads),
    ("set", include_str!("lua/set.lua"), Flags::Writes),
    ("mset", include_str!("lua/mset.lua"), Flags::Writes),
    ("delete", include_str!("lua/delete.lua"), Flags::Frees),
    ("expire", include_str!("lua/expire.lua"), Flags::Frees),
    ("persist", include_str!("lua/persist.lua"), Flags::Frees),
    ("incr", include_str!("lua/incr.lua"), Flags::Writes),
    (
        "set_if_absent",
        include_str!("lua/set_if_absent.lua"),
        Flags::Writes,
    ),
    (
        "compare_and_set",
        include_str!("lua/compare_and_set.lua"),
        Flags::Writes,
    ),
    ("get_del", include_str!("lua/get_del.lua"), Flags::Frees),
    (
        "list_append_unique",
        include_str!("lua/list_append_unique.lua"),
        Flags::Writes,
    ),
    (
        "list_push",
        include_str!("lua/list_push.lua"),
        Flags::Writes,
    ),
    (
        "list_pop_front",
        include_str!("lua/list_pop_front.lua"),
        Flags::Frees,
    ),
    (
        "list_pop_all",
        include_str!("lua/list_pop_all.lua"),
        Flags::Frees,
    ),
    // The change feed's own (docs/redis-feed.md), with `feed/common.lua` in the library too.
    ("feed_open", include_str!("feed/open.lua"), Flags::Writes),
    ("feed_read", include_str!("feed/read.lua"), Flags::Writes),
    (
        "feed_push_front",
        include_str!("feed/push_front.lua"),
        Flags::Writes,
    ),
];

/// The library, and one [`Function`] per script, built once per handle.
pub(crate) struct Scripts {
    /// The library's source, as `FUNCTION LOAD` takes it.
    library: String,
    pub(crate) get: Function,
    pub(crate) mget: Function,
    pub(crate) set: Function,
    pub(crate) mset: Function,
    pub(crate) delete: Function,
    pub(crate) expire: Function,
    pub(crate) persist: Function,
    pub(crate) incr: Function,
    pub(crate) set_if_absent: Function,
    pub(crate) compare_and_set: Function,
    pub(crate) get_del: Function,
    pub(crate) list_append_unique: Function,
    pub(crate) list_push: Function,
    pub(crate) list_pop_front: Function,
    pub(crate) list_pop_all: Function,
    pub(crate) feed_open: Function,
    pub(crate) feed_read: Function,
    pub(crate) feed_push_front: Function,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        // The prelude, then each script as a local function of the library.
        let mut body = String::from(include_str!("lua/prelude.lua"));
        body.push('\n');
        body.push_str(include_str!("feed/common.lua"));
        for (name, text, flags) in SCRIPTS {
            body.push_str(&format!(
                "\n-- {name} ({})\nlocal function run_{name}(KEYS, ARGV)\n  init()\n{text}\nend\n",
                flags.lua()
            ));
        }
        // The content hash names the library and its functions: a changed script is a new
        // library, never a silent replacement of another version's functions.
        let hash = Script::new(&body).get_hash()[..12].to_owned();
        let mut library = format!("#!lua name=ekv_{hash}\n{body}");
        for (name, _, flags) in SCRIPTS {
            library.push_str(&format!(
                "redis.register_function{{function_name='ekv_{hash}_{name}', \
                 callback=run_{name}, flags={}}}\n",
                flags.lua()
            ));
        }
        let function = |name: &str| Function {
            name: format!("ekv_{hash}_{name}"),
        };
        Scripts {
            get: function("get"),
            mget: function("mget"),
            set: function("set"),
            mset: function("mset"),
            delete: function("delete"),
            expire: function("expire"),
            persist: function("persist"),
            incr: function("incr"),
            set_if_absent: function("set_if_absent"),
            compare_and_set: function("compare_and_set"),
            get_del: function("get_del"),
            list_append_unique: function("list_append_unique"),
            list_push: function("list_push"),
            list_pop_front: function("list_pop_front"),
            list_pop_all: function("list_pop_all"),
            feed_open: function("feed_open"),
            feed_read: function("feed_read"),
            feed_push_front: function("feed_push_front"),
            library,
        }
    }
}

/// Loads the library into the server behind `connection` (`FUNCTION LOAD REPLACE`: the same
/// text under the same name, so replacing it changes nothing for other handles). The one place
/// the library is loaded, on any connection type (a cluster connection sends `FUNCTION LOAD` to
/// every primary).
pub(crate) async fn load<C: ConnectionLike>(
    connection: &mut C,
    scripts: &Scripts,
) -> Result<(), KvError> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(&scripts.library)
        .query_async::<String>(connection)
        .await
        .map(drop)
        .map_err(|error| {
            super::exec::connection_error("cannot load the scripts into Redis", &error)
        })
}

/// Whether a server error says our functions are not loaded (a restart without persistence, or
/// `FUNCTION FLUSH`): `ERR Function not found`.
pub(crate) fn is_not_loaded(error: &ServerError) -> bool {
    says_not_loaded(error.code(), error.details())
}

/// Whether an error's code and details are the server's `ERR Function not found`.
fn says_not_loaded(code: &str, details: Option<&str>) -> bool {
    code == "ERR" && details.is_some_and(|details| details.starts_with("Function not found"))
}

/// Whether a command's outcome, as an error or as a server error reply, says our functions are
/// not loaded ([`is_not_loaded`]).
pub(crate) fn outcome_not_loaded(outcome: &redis::RedisResult<redis::Value>) -> bool {
    match outcome {
        Ok(redis::Value::ServerError(error)) => is_not_loaded(error),
        Ok(_) => false,
        Err(error) => error
            .code()
            .is_some_and(|code| says_not_loaded(code, error.detail())),
    }
}

/// Runs `command` (an `FCALL`) on `connection`; if the server lost the library (a restart
/// without persistence, `FUNCTION FLUSH`), loads it and runs the command once more. Refused
/// calls had not run, so running one again applies it once.
pub(crate) async fn query_loaded<C: ConnectionLike>(
    connection: &mut C,
    scripts: &Scripts,
    command: &Cmd,
) -> redis::RedisResult<redis::Value> {
    let outcome = command.query_async(connection).await;
    if !outcome_not_loaded(&outcome) {
        return outcome;
    }
    if let Err(error) = load(connection, scripts).await {
        tracing::warn!(%error, "cannot load the scripts into Redis again");
    }
    command.query_async(connection).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_registered_once_under_the_hashed_name() {
        let scripts = Scripts::new();
        let prefix = scripts.set.name.trim_end_matches("set");
        assert_eq!(prefix.len(), "ekv_".len() + 12 + 1);
        for (name, _, _) in SCRIPTS {
            let registration = format!("function_name='{prefix}{name}',");
            assert_eq!(scripts.library.matches(&registration).count(), 1, "{name}");
        }
        assert_eq!(
            scripts.library.matches("redis.register_function{").count(),
            SCRIPTS.len()
        );
        assert!(scripts
            .library
            .starts_with(&format!("#!lua name={}\n", prefix.trim_end_matches('_'))));
    }
}
