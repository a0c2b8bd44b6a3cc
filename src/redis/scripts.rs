//! The Lua scripts of the Redis data layout (`src/redis/lua/`; the layout is written down in
//! `docs/redis.md`, "The data layout").
//!
//! Every call that names one key (and `mget`, `mset`) is one of these scripts, run whole by the
//! server: Redis runs a script with no other client's command in between, which is what the
//! owner task's single-threaded loop gives in-process. Each script opens with its KEYS, ARGV,
//! reply and error replies; `prelude.lua`, prepended to each, holds what they share (the strict
//! JSON checker, the list and id-index helpers, the change stream's `XADD`).
//!
//! A script checks, and decodes what it must decode, before its first write (Redis does not roll
//! back a script that fails half-way), so a failed call changes nothing. Errors the caller must
//! see as a [`KvError`](crate::KvError) come back as error replies with our own codes
//! (`KVWRONGTYPE`, `KVOVERFLOW`, `KVNOTJSON`, `KVTOODEEP`, `KVFOREIGN`, `KVBADARG`), which
//! [`exec`](super::exec) maps.
//!
//! The scripts are loaded once when the handle connects and invoked by their SHA1 (`EVALSHA`);
//! after a server restart, which empties the script cache, the owner task reloads them on the
//! first `NOSCRIPT` reply and sends the refused commands again.

use redis::Script;

/// A script's body with the prelude in front: one self-contained `EVALSHA` body.
macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            "\n",
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// The scripts, compiled into [`Script`]s (which know their SHA1) once per handle.
pub(crate) struct Scripts {
    pub(crate) get: Script,
    pub(crate) mget: Script,
    pub(crate) set: Script,
    pub(crate) mset: Script,
    pub(crate) delete: Script,
    pub(crate) expire: Script,
    pub(crate) persist: Script,
    pub(crate) incr: Script,
    pub(crate) set_if_absent: Script,
    pub(crate) compare_and_set: Script,
    pub(crate) get_del: Script,
    pub(crate) list_append_unique: Script,
    pub(crate) list_push: Script,
    pub(crate) list_pop_front: Script,
    pub(crate) list_pop_all: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            get: script!("get.lua"),
            mget: script!("mget.lua"),
            set: script!("set.lua"),
            mset: script!("mset.lua"),
            delete: script!("delete.lua"),
            expire: script!("expire.lua"),
            persist: script!("persist.lua"),
            incr: script!("incr.lua"),
            set_if_absent: script!("set_if_absent.lua"),
            compare_and_set: script!("compare_and_set.lua"),
            get_del: script!("get_del.lua"),
            list_append_unique: script!("list_append_unique.lua"),
            list_push: script!("list_push.lua"),
            list_pop_front: script!("list_pop_front.lua"),
            list_pop_all: script!("list_pop_all.lua"),
        }
    }

    /// Every script, for loading them all at once.
    pub(crate) fn all(&self) -> [&Script; 15] {
        [
            &self.get,
            &self.mget,
            &self.set,
            &self.mset,
            &self.delete,
            &self.expire,
            &self.persist,
            &self.incr,
            &self.set_if_absent,
            &self.compare_and_set,
            &self.get_del,
            &self.list_append_unique,
            &self.list_push,
            &self.list_pop_front,
            &self.list_pop_all,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_loaded_and_none_twice() {
        let scripts = Scripts::new();
        let mut hashes: Vec<&str> = scripts.all().iter().map(|s| s.get_hash()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), 15);
    }
}
