//! The handle's own small API, which the doctests show and these pin for the mutation run (which
//! runs no doctests): prefixes, whether the store runs, builder settings, the `Debug` form.

use ephemeral_kv::{KvBuilder, KvError, KvHandle};
use serde_json::json;

#[tokio::test]
async fn a_handle_reports_its_prefix_and_whether_its_store_runs() {
    let kv = KvHandle::builder().prefix("app:").spawn();
    assert_eq!(kv.prefix(), "app:");
    assert_eq!(kv.with_prefix("run:").prefix(), "app:run:");
    assert_eq!(KvHandle::spawn().prefix(), "");
    assert!(!kv.is_closed());
    assert_eq!(
        format!("{kv:?}"),
        r#"KvHandle { prefix: "app:", closed: false }"#
    );

    kv.shutdown().await;
    assert!(kv.is_closed());
    assert_eq!(
        format!("{kv:?}"),
        r#"KvHandle { prefix: "app:", closed: true }"#
    );
}

#[tokio::test]
async fn a_mailbox_capacity_of_zero_is_taken_as_one() {
    let kv = KvBuilder::new().mailbox_capacity(0).spawn();
    kv.set("k", 1).await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!(1)));
}

#[tokio::test]
async fn the_default_builder_is_the_new_one() {
    let kv = KvBuilder::default().spawn();
    assert_eq!(kv.prefix(), "");
    kv.set("k", "v").await.unwrap();
    assert_eq!(kv.get("k").await.unwrap().as_deref(), Some(&json!("v")));
    kv.shutdown().await;
    assert!(matches!(kv.get("k").await, Err(KvError::Closed)));
}
