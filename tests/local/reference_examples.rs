//! Every example of the reference's `EphemeralKV` documentation, in Rust, with the result the
//! reference promises: rules 1–9 of `docs/rules.md` (`set`/`get` with TTLs, `delete`,
//! `list_append_unique` with `id_key` and `ttl`, `list_pop_all`, `mset`/`mget`, `expire`,
//! `purge_expired` with its limit, prefixes) as the reference's users meet them, on the in-process
//! store and tokio's paused clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ephemeral_kv::KvHandle;
use serde_json::{json, Value};

#[tokio::test(start_paused = true)]
async fn set_and_get() {
    let kv = KvHandle::spawn();
    // await context.kv().set("session_token", "abc123")
    kv.set("session_token", "abc123").await.unwrap();
    // await context.kv().set("user_id", 42, ttl_s=600)
    kv.set("user_id", 42)
        .ttl(Duration::from_secs(600))
        .await
        .unwrap();
    // value = await context.kv().get("session_token")
    assert_eq!(
        kv.get("session_token").await.unwrap().as_deref(),
        Some(&json!("abc123"))
    );
    // user_id = await context.kv().get("user_id", default=None)
    assert_eq!(kv.get_as::<u64>("user_id").await.unwrap(), Some(42));
    tokio::time::advance(Duration::from_secs(600)).await;
    let user_id = kv.get("user_id").await.unwrap().unwrap_or_default();
    assert_eq!(*user_id, Value::Null);
}

#[tokio::test]
async fn delete() {
    let kv = KvHandle::spawn();
    kv.set("session_token", "abc123").await.unwrap();
    // await context.kv().delete("session_token")
    kv.delete("session_token").await.unwrap();
    assert_eq!(kv.get("session_token").await.unwrap(), None);
    // await context.kv().delete(f"user_cache:{user_id}")  -- a missing key is a no-op
    let user_id = 42;
    kv.delete(format!("user_cache:{user_id}")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn list_append_unique() {
    let kv = KvHandle::spawn();
    // await context.kv().list_append_unique("recent_users", [{"id": 1, "name": "Alice"}])
    let users = kv
        .list_append_unique("recent_users", vec![json!({"id": 1, "name": "Alice"})])
        .await
        .unwrap();
    assert_eq!(users, vec![json!({"id": 1, "name": "Alice"})]);
    // The notes' stored structure: [{"id": 1, "name": "Alice"}, {"id": 2, "name": "Bob"}, ...]
    let users = kv
        .list_append_unique(
            "recent_users",
            vec![
                json!({"id": 2, "name": "Bob"}),
                json!({"id": 1, "name": "Alice"}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        users,
        vec![
            json!({"id": 1, "name": "Alice"}),
            json!({"id": 2, "name": "Bob"})
        ]
    );
    // await context.kv().list_append_unique("tasks", [{"task_id": 42, "desc": "Review PR"}],
    //                                       id_key="task_id", ttl_s=3600)
    let tasks = kv
        .list_append_unique("tasks", vec![json!({"task_id": 42, "desc": "Review PR"})])
        .id_key("task_id")
        .ttl(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(tasks, vec![json!({"task_id": 42, "desc": "Review PR"})]);
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(kv.get("tasks").await.unwrap(), None);
}

#[tokio::test]
async fn list_pop_all() {
    let kv = KvHandle::spawn();
    kv.list_append_unique("recent_events", [json!({"id": "e1"}), json!({"id": "e2"})])
        .await
        .unwrap();
    // items = await context.kv().list_pop_all("recent_events")
    let items = kv.list_pop_all("recent_events").await.unwrap();
    assert_eq!(items, vec![json!({"id": "e1"}), json!({"id": "e2"})]);
    // logs = await context.kv().list_pop_all("logs")  # returns [] if "logs" is missing
    assert_eq!(kv.list_pop_all("logs").await.unwrap(), Vec::<Value>::new());
}

#[tokio::test(start_paused = true)]
async fn mset_and_mget() {
    let kv = KvHandle::spawn();
    // await context.kv().mset({"foo": 1, "bar": "baz"})
    kv.mset(HashMap::from([("foo", json!(1)), ("bar", json!("baz"))]))
        .await
        .unwrap();
    // await context.kv().mset({"session": "abc", "count": 42}, ttl_s=60)
    kv.mset([("session", json!("abc")), ("count", json!(42))])
        .ttl(Duration::from_secs(60))
        .await
        .unwrap();
    // values = await context.kv().mget(["user_id", "session_token", "profile"])
    let values = kv
        .mget(["user_id", "session_token", "profile"])
        .await
        .unwrap();
    assert_eq!(values, vec![None, None, None]);
    // results = await context.kv().mget(["foo", "bar"])
    assert_eq!(
        kv.mget(["foo", "bar"]).await.unwrap(),
        vec![Some(Arc::new(json!(1))), Some(Arc::new(json!("baz")))]
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        kv.mget(["session", "count", "foo"]).await.unwrap(),
        vec![None, None, Some(Arc::new(json!(1)))]
    );
}

#[tokio::test(start_paused = true)]
async fn expire() {
    let kv = KvHandle::spawn();
    kv.set("session_token", "abc123").await.unwrap();
    kv.set("user_profile:42", json!({"name": "Ada"}))
        .await
        .unwrap();
    // await context.kv().expire("session_token", ttl_s=300)
    assert!(kv
        .expire("session_token", Duration::from_secs(300))
        .await
        .unwrap());
    // await context.kv().expire("user_profile:42", ttl_s=60)
    assert!(kv
        .expire("user_profile:42", Duration::from_secs(60))
        .await
        .unwrap());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(
        kv.mget(["session_token", "user_profile:42"]).await.unwrap(),
        vec![Some(Arc::new(json!("abc123"))), None]
    );
}

#[tokio::test(start_paused = true)]
async fn purge_expired() {
    let kv = KvHandle::builder().active_expiry(false).spawn();
    let entries: Vec<(String, u32)> = (0..1600).map(|i| (format!("k{i}"), i)).collect();
    kv.mset(entries).ttl(Duration::from_secs(1)).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    // removed = await context.kv().purge_expired()
    assert_eq!(kv.purge_expired().await.unwrap(), 1000);
    // removed = await context.kv().purge_expired(limit=500)
    assert_eq!(kv.purge_expired().limit(500).await.unwrap(), 500);
    assert_eq!(kv.purge_expired().limit(500).await.unwrap(), 100);
}

#[tokio::test]
async fn prefixing_namespaces_keys() {
    // "Instances may prepend a prefix to all keys for namespacing."
    let kv = KvHandle::builder().prefix("app:").spawn();
    let run = kv.with_prefix("run:42:");
    run.set("step", 1).await.unwrap();
    kv.set("step", 2).await.unwrap();
    assert_eq!(
        kv.get("run:42:step").await.unwrap().as_deref(),
        Some(&json!(1))
    );
    assert_eq!(run.get("step").await.unwrap().as_deref(), Some(&json!(1)));
    assert_eq!(kv.get("step").await.unwrap().as_deref(), Some(&json!(2)));
}
