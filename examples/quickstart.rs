//! A tour of the reference API's examples, printing what each call returns.
//!
//! Run it with `cargo run --example quickstart`.
//!
//! The example pauses tokio's clock, so the 600-second TTL below runs out at once instead of after
//! ten minutes: the same trick the crate's tests use.

use std::collections::HashMap;
use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), KvError> {
    tokio::time::pause();
    let kv = KvHandle::builder().prefix("quickstart:").spawn();
    println!("spawned {kv:?}\n");

    println!("-- core methods");
    kv.set("session_token", "abc123").await?;
    println!(r#"set("session_token", "abc123")"#);
    kv.set("user_id", 42).ttl(Duration::from_secs(600)).await?;
    println!(r#"set("user_id", 42).ttl(600 s)"#);
    let value = kv.get("session_token").await?;
    println!(r#"get("session_token")                 -> {value:?}"#);
    let user_id: Option<u64> = kv.get_as("user_id").await?;
    println!(r#"get_as::<u64>("user_id")             -> {user_id:?}"#);

    tokio::time::sleep(Duration::from_secs(600)).await;
    let user_id = kv.get("user_id").await?.unwrap_or_default();
    println!(r#"600 s later: get("user_id") or null -> {user_id}"#);

    kv.delete("session_token").await?;
    println!(
        r#"delete("session_token"); get        -> {:?}"#,
        kv.get("session_token").await?
    );
    kv.delete("user_cache:42").await?;
    println!(r#"delete("user_cache:42") (missing)   -> Ok"#);

    let users = kv
        .list_append_unique("recent_users", vec![json!({"id": 1, "name": "Alice"})])
        .await?;
    println!(
        "list_append_unique(\"recent_users\", [Alice])      -> {}",
        json!(users)
    );
    let users = kv
        .list_append_unique(
            "recent_users",
            vec![
                json!({"id": 1, "name": "Alice"}),
                json!({"id": 2, "name": "Bob"}),
            ],
        )
        .await?;
    println!(
        "list_append_unique(\"recent_users\", [Alice, Bob]) -> {}",
        json!(users)
    );
    let tasks = kv
        .list_append_unique("tasks", vec![json!({"task_id": 42, "desc": "Review PR"})])
        .id_key("task_id")
        .ttl(Duration::from_secs(3600))
        .await?;
    println!(
        "list_append_unique(\"tasks\", ..).id_key(\"task_id\").ttl(3600 s) -> {}",
        json!(tasks)
    );

    let items = kv.list_pop_all("recent_users").await?;
    println!("list_pop_all(\"recent_users\") -> {}", json!(items));
    let logs = kv.list_pop_all("logs").await?;
    println!("list_pop_all(\"logs\")         -> {}", json!(logs));

    println!("\n-- optional helpers");
    kv.mset(HashMap::from([("foo", json!(1)), ("bar", json!("baz"))]))
        .await?;
    println!(r#"mset({{"foo": 1, "bar": "baz"}})"#);
    kv.mset([("session", json!("abc")), ("count", json!(42))])
        .ttl(Duration::from_secs(60))
        .await?;
    println!(r#"mset({{"session": "abc", "count": 42}}).ttl(60 s)"#);
    let values = kv.mget(["user_id", "session_token", "profile"]).await?;
    println!(r#"mget(["user_id", "session_token", "profile"]) -> {values:?}"#);
    let values = kv.mget(["foo", "bar"]).await?;
    println!(r#"mget(["foo", "bar"])                          -> {values:?}"#);

    kv.set("session_token", "abc123").await?;
    let existed = kv.expire("session_token", Duration::from_secs(300)).await?;
    println!(r#"expire("session_token", 300 s)  -> {existed}"#);
    let existed = kv
        .expire("user_profile:42", Duration::from_secs(60))
        .await?;
    println!(r#"expire("user_profile:42", 60 s) -> {existed} (no such key)"#);

    tokio::time::sleep(Duration::from_secs(3700)).await;
    let removed = kv.purge_expired().await?;
    println!("an hour later: purge_expired()            -> {removed} (active expiry removed them already)");
    let removed = kv.purge_expired().limit(500).await?;
    println!("purge_expired().limit(500)                -> {removed}");
    println!(
        "stats()                                   -> {:?}",
        kv.stats().await?
    );

    println!("\n-- errors change nothing");
    let err = kv.set("foo", 2).ttl(Duration::ZERO).await.unwrap_err();
    println!("set(\"foo\", 2).ttl(0 s)                   -> Err({err})");
    let err = kv
        .list_append_unique("bar", vec![json!({"id": 1})])
        .await
        .unwrap_err();
    println!("list_append_unique(\"bar\", ..)            -> Err({err})");
    println!(
        "get(\"foo\"), get(\"bar\")                  -> {:?}",
        kv.mget(["foo", "bar"]).await?
    );

    kv.shutdown().await;
    println!("\nshutdown(); get(\"foo\") -> {:?}", kv.get("foo").await);
    Ok(())
}
