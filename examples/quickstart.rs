//! The reference API's examples as a story: each call the example makes, and what it returned.
//! Run it with `cargo run --example quickstart`.
//!
//! `show!` prints each call's own source text and its answer, so the output cannot drift from the
//! code (`secs` is `Duration::from_secs`). Time is tokio's paused clock: where the output says it
//! advances the clock, TTLs run out at once. Active expiry is off, so expired keys wait, invisible,
//! for `purge_expired`; by default the store removes them itself.

use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, List, Stats, Ttl};
use serde_json::{json, Value};

/// Runs one call, prints its source text (without `.await`) and its answer, and returns it.
macro_rules! show {
    ($call:expr) => {{
        let answer = $call;
        let text = stringify!($call).replace('\n', " ");
        let text = text.trim_end_matches(".await");
        println!("  {text:<56} -> {}", Show::show(&answer));
        answer
    }};
}

async fn advance(secs: u64) {
    println!("  (advancing the paused clock by {secs} s)");
    tokio::time::advance(Duration::from_secs(secs)).await;
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), KvError> {
    let secs = Duration::from_secs;
    let kv = KvHandle::builder()
        .prefix("qs:")
        .active_expiry(false)
        .spawn();
    println!("== a store: {kv:?}, active expiry off");

    println!("\n== set, get, delete");
    show!(kv.set("session_token", "abc123").await)?;
    show!(kv.set("user_id", 42).ttl(secs(600)).await)?;
    show!(kv.get("session_token").await)?;
    show!(kv.get_as::<u64>("user_id").await)?;
    show!(kv.ttl("user_id").await)?;
    advance(600).await;
    show!(kv.get("user_id").await)?;
    show!(kv.delete("session_token").await)?;
    show!(kv.get("session_token").await)?;
    show!(kv.delete("user_cache:42").await)?; // missing: a no-op

    println!("\n== lists of unique items");
    let alice = json!({"id": 1, "name": "Alice"});
    let bob = json!({"id": 2, "name": "Bob"});
    println!("  (alice = {alice}, bob = {bob})");
    show!(kv.list_append_unique("recent_users", [&alice]).await)?;
    show!(kv.list_append_unique("recent_users", [&alice, &bob]).await)?;
    let task = json!({"task_id": 42, "desc": "Review PR"});
    show!(
        kv.list_append_unique("tasks", [task])
            .id_key("task_id")
            .ttl(secs(3600))
            .await
    )?;
    show!(kv.list_pop_all("recent_users").await)?;
    show!(kv.list_pop_all("recent_users").await)?;
    show!(kv.list_pop_all("logs").await)?;

    println!("\n== a capped work queue");
    show!(kv.list_push("jobs", ["a", "b", "c", "d"]).max_len(3).await)?;
    show!(kv.get("jobs").await)?;
    show!(kv.list_pop_front("jobs", 2).await)?;
    show!(kv.list_pop_front("jobs", 2).await)?;
    show!(kv.exists("jobs").await)?;

    println!("\n== many keys at once");
    show!(kv.mset([("foo", json!(1)), ("bar", json!("baz"))]).await)?;
    show!(
        kv.mset([("session", json!("abc")), ("count", json!(42))])
            .ttl(secs(60))
            .await
    )?;
    show!(kv.mget(["foo", "bar", "profile"]).await)?;

    println!("\n== expiry");
    show!(kv.set("session_token", "abc123").await)?;
    show!(kv.expire("session_token", secs(300)).await)?;
    show!(kv.expire("user_profile:42", secs(60)).await)?; // no such key
    advance(3700).await;
    show!(kv.purge_expired().limit(2).await)?;
    show!(kv.purge_expired().await)?;
    show!(kv.stats().await)?;

    println!("\n== a failed call changes nothing");
    let _refused = show!(kv.set("foo", 2).ttl(secs(0)).await);
    let _refused = show!(kv.list_append_unique("bar", [json!({"id": 1})]).await);
    show!(kv.mget(["foo", "bar"]).await)?;

    println!("\n== shutdown");
    kv.shutdown().await;
    println!("  kv.shutdown() returned: the owner task has stopped");
    let _closed = show!(kv.get("foo").await);
    Ok(())
}

/// How an answer is printed: JSON for values, `Some(..)`/`None` for reads, `Ok` for `()`.
trait Show {
    fn show(&self) -> String;
}
impl<T: Show> Show for Result<T, KvError> {
    fn show(&self) -> String {
        self.as_ref()
            .map_or_else(|err| format!("Err({err})"), T::show)
    }
}

macro_rules! show_as {
    ($($t:ty),* => |$v:ident| $body:expr) => {
        $(impl Show for $t { fn show(&self) -> String { let $v = self; $body } })*
    };
}
show_as!(() => |_v| "Ok".into());
show_as!(bool, usize => |v| v.to_string());
show_as!(Ttl, Option<u64>, Stats => |v| format!("{v:?}"));
show_as!(Vec<Value>, List => |v| json!(v).to_string());
show_as!(Option<Arc<Value>> => |v| v.as_ref().map_or("None".into(), |v| format!("Some({v})")));
show_as!(Vec<Option<Arc<Value>>> => |v| {
    format!("[{}]", v.iter().map(Show::show).collect::<Vec<_>>().join(", "))
});
