//! Values are shared, not copied: the in-process store hands out the `Arc` it holds, and changes a
//! list in place when no one else holds it. No rule of `docs/rules.md` asks for this (each says
//! what a call answers, which a copy would answer too); it is how this store answers the reads of
//! rules 7, 18 and 24, the events of rule 23 and the list calls of rules 4, 5, 20, 26 and 27
//! cheaply. Each test would fail against a store that copies: a copy has its own address, and so
//! have the strings inside it.

use std::sync::Arc;

use ephemeral_kv::{KvHandle, WatchEvent};
use futures::StreamExt;
use serde_json::{json, Value};

/// Where the text of `value[field]` lives: a deep copy of the value moves it, a move of the value
/// (say, a `Vec` growing) does not.
fn text_address(value: &Value, field: &str) -> usize {
    value[field].as_str().expect("a string field").as_ptr() as usize
}

fn file(i: usize) -> Value {
    json!({"id": format!("file-{i}"), "name": format!("report-{i}.pdf"), "size": 1024 + i})
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_read_shares_the_one_stored_value() {
    let kv = KvHandle::spawn();
    kv.set("profile", json!({"name": "Ada", "langs": ["en", "fr"]}))
        .await
        .unwrap();
    let a = kv.get("profile").await.unwrap().unwrap();
    let b = kv.get("profile").await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let [c, d] = <[_; 2]>::try_from(kv.mget(["profile", "profile"]).await.unwrap()).unwrap();
    assert!(Arc::ptr_eq(&a, &c.unwrap()));
    assert!(Arc::ptr_eq(&a, &d.unwrap()));
    let waited = kv.wait_for("profile").await.unwrap();
    assert!(Arc::ptr_eq(&a, &waited));
    let updated = kv.update("profile", |v| v.cloned()).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(
        &updated,
        &kv.get("profile").await.unwrap().unwrap()
    ));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn watch_events_share_the_stored_value() {
    let kv = KvHandle::spawn();
    let mut events = kv.watch("").await.unwrap();
    kv.set("k", json!({"big": "value"})).await.unwrap();
    let Some(Ok(WatchEvent::Set { value, .. })) = events.next().await else {
        panic!("expected a set event");
    };
    assert!(Arc::ptr_eq(&value, &kv.get("k").await.unwrap().unwrap()));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn list_append_unique_appends_in_place_when_no_one_holds_the_list() {
    let kv = KvHandle::spawn();
    let first = kv.list_append_unique("inbox", [file(0)]).await.unwrap();
    let address = text_address(&first[0], "name");
    drop(first);
    for i in 1..500 {
        // Each answer is dropped at once, as a caller that only appends does.
        kv.list_append_unique("inbox", [file(i)]).await.unwrap();
    }
    let list = kv.list_append_unique("inbox", [file(0)]).await.unwrap();
    assert_eq!(list.len(), 500, "file-0 was there already");
    assert_eq!(
        text_address(&list[0], "name"),
        address,
        "the list was copied"
    );
    let stored = kv.get("inbox").await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&stored, list.as_value()));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn list_push_and_pop_front_work_in_place_and_move_items_out() {
    let kv = KvHandle::spawn();
    kv.list_push("log", [file(0), file(1)]).await.unwrap();
    let address = text_address(&kv.get("log").await.unwrap().unwrap()[1], "name");
    for i in 2..200 {
        kv.list_push("log", [file(i)]).max_len(199).await.unwrap();
    }
    // Item 0 fell off the front; item 1 is first now, never copied.
    let log = kv.get("log").await.unwrap().unwrap();
    assert_eq!(log.as_array().unwrap().len(), 199);
    assert_eq!(text_address(&log[0], "name"), address);
    drop(log);
    let taken = kv.list_pop_front("log", 1).await.unwrap();
    assert_eq!(taken, vec![file(1)]);
    assert_eq!(
        text_address(&taken[0], "name"),
        address,
        "moved out, not copied"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn values_leaving_the_store_move_out_without_a_copy() {
    let kv = KvHandle::spawn();
    kv.set("job", file(1)).await.unwrap();
    let address = text_address(&kv.get("job").await.unwrap().unwrap(), "name");
    let taken = kv.get_del("job").await.unwrap().unwrap();
    assert_eq!(text_address(&taken, "name"), address);

    kv.list_append_unique("inbox", [file(2)]).await.unwrap();
    let address = text_address(&kv.get("inbox").await.unwrap().unwrap()[0], "name");
    let popped = kv.list_pop_all("inbox").await.unwrap();
    assert_eq!(text_address(&popped[0], "name"), address);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_reader_keeps_its_snapshot_while_the_list_moves_on() {
    let kv = KvHandle::spawn();
    let before = kv.list_append_unique("inbox", [file(0)]).await.unwrap();
    let after = kv.list_append_unique("inbox", [file(1)]).await.unwrap();
    assert_eq!(before.len(), 1, "a held list is a snapshot");
    assert_eq!(after.len(), 2);
    let owned: Vec<Value> = before.into_vec();
    assert_eq!(owned, vec![file(0)]);
}

/// An unread `watch` stream holds the version of the list it was sent first and, for each later
/// append, the item it added: the store goes on changing its list in place (one copy, at the
/// first append after the stream took its version), and the stream still yields every version,
/// whole and exact, when it is read.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_unread_watch_stream_does_not_make_each_append_copy_the_list() {
    let kv = KvHandle::spawn();
    for i in 0..100 {
        kv.list_append_unique("inbox", [file(i)]).await.unwrap();
    }
    let mut events = kv.watch("").await.unwrap();
    // The stream's first event holds the store's list; this append copies it, once.
    kv.list_append_unique("inbox", [file(100)]).await.unwrap();
    kv.list_append_unique("inbox", [file(101)]).await.unwrap();
    let held = kv.get("inbox").await.unwrap().unwrap();
    let (first, third) = (
        text_address(&held[0], "name"),
        text_address(&held[2], "name"),
    );
    drop(held);
    for i in 102..600 {
        kv.list_append_unique("inbox", [file(i)]).await.unwrap();
        kv.list_push("log", [file(i)]).max_len(50).await.unwrap();
    }
    let taken = kv.list_pop_front("inbox", 2).await.unwrap();
    assert_eq!(taken, vec![file(0), file(1)]);
    let list = kv.get("inbox").await.unwrap().unwrap();
    // file-2 is first now, where it was; file-0 moved out to `taken`.
    assert_eq!(text_address(&list[0], "name"), third, "the list was copied");
    assert_eq!(text_address(&taken[0], "name"), first);
    drop(list);

    let mut log_len = 0;
    for i in 100..600 {
        let event = events.next().await.unwrap().unwrap();
        let expected: Vec<Value> = (0..=i).map(file).collect();
        assert_eq!(
            event,
            WatchEvent::Set {
                key: "inbox".into(),
                value: Arc::new(json!(expected))
            }
        );
        if i >= 102 {
            log_len = (log_len + 1).min(50);
            let event = events.next().await.unwrap().unwrap();
            let expected: Vec<Value> = (i + 1 - log_len..=i).map(file).collect();
            assert_eq!(
                event,
                WatchEvent::Set {
                    key: "log".into(),
                    value: Arc::new(json!(expected))
                }
            );
        }
    }
    let event = events.next().await.unwrap().unwrap();
    let expected: Vec<Value> = (2..600).map(file).collect();
    assert_eq!(
        event,
        WatchEvent::Set {
            key: "inbox".into(),
            value: Arc::new(json!(expected))
        }
    );
}
