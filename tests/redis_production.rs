//! The Redis backend against servers set up as in production (`docs/redis-deploy.md`):
//! - TLS (`--features redis-tls`): `rediss://` with a CA of the test's own, each certificate
//!   problem as a clear error at connect time, mutual TLS;
//! - ACL (`--features redis`): a user confined to the prefix `app:` runs every call of a handle,
//!   and is refused, clearly and at once, outside it;
//! - Redis Cluster (`--features redis`): a smoke test of the 6-node test cluster through
//!   `redis-cli` alone (start, answer, fail over); then `KvBuilder::redis_cluster` on it
//!   (`cluster::*`): reads across slots and the refusals of `mset`, `transaction` and the change
//!   feed there, an ACL user, a resharded slot and a primary killed under load, where no write is
//!   applied twice.
//!
//! Every test starts its own servers on free loopback ports (killed by pid at the end) and says
//! it is skipped when `redis-server` is not on PATH.

#[macro_use]
mod support;

redis_suite_skipped!();

#[cfg(feature = "redis")]
use std::time::Duration;

#[cfg(feature = "redis")]
use ephemeral_kv::{BackendErrorKind, KvError, KvHandle};

/// How long any one connect or call may take before the test fails as hung.
#[cfg(feature = "redis")]
const BOUND: Duration = Duration::from_secs(10);

/// `future`, or a panic naming `what` if it takes longer than [`BOUND`].
#[cfg(feature = "redis")]
async fn bounded<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {BOUND:?}"))
}

/// Watches `prefix` on `kv`, sets `key` (under it) to `value`, and checks that the watcher sees
/// that write.
#[cfg(feature = "redis")]
async fn a_watcher_sees_a_set(kv: &KvHandle, prefix: &str, key: &str, value: i64) {
    let mut events = kv.watch(prefix).await.unwrap();
    kv.set(key, value).await.unwrap();
    let event = bounded("watch", futures::StreamExt::next(&mut events))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.key(), key);
}

/// The message and kind of a backend error; panics on anything else.
#[cfg(feature = "redis")]
fn backend(result: Result<impl std::fmt::Debug, KvError>) -> (BackendErrorKind, String) {
    match result {
        Err(KvError::Backend { kind, message, .. }) => (kind, message),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[cfg(feature = "redis-tls")]
mod tls {
    use serde_json::json;

    use super::support::redis_server::RedisServer;
    use super::support::redis_tls::{Ca, ClientAuth, ServerCert, TlsServer};
    use super::*;

    /// Connects to `server` trusting its CA (and the system's roots).
    async fn connect(server: &TlsServer) -> Result<KvHandle, KvError> {
        bounded(
            "connect",
            KvHandle::builder()
                .prefix("t:")
                .redis_ca_certificate(server.ca.pem())
                .redis(server.url()),
        )
        .await
    }

    /// `redis_cluster` over `rediss://` on a TLS-only 6-node cluster (client connections, the
    /// cluster bus and replication all TLS) with the test's own CA: calls on keys spread over the
    /// slots, the multi-key and optimistic calls and the change feed under a hash-tagged prefix,
    /// and the same certificate refusal as one server without the CA.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_over_rediss_runs_calls_and_refuses_an_unknown_issuer() {
        use super::support::redis_cluster::RedisCluster;
        use serde_json::Value;

        let test = "a_cluster_over_rediss_runs_calls_and_refuses_an_unknown_issuer";
        let ca = Ca::new("ephemeral-kv cluster CA");
        let Some(cluster) = RedisCluster::start_tls(test, &ca).await else {
            return;
        };
        let urls = cluster.urls();
        assert!(
            urls.iter().all(|url| url.starts_with("rediss://")),
            "{urls:?}"
        );
        let connect = |prefix: &'static str| {
            let urls = urls.clone();
            let pem = ca.pem();
            async move {
                bounded(
                    "connect",
                    KvHandle::builder()
                        .prefix(prefix)
                        .redis_ca_certificate(pem)
                        .redis_cluster(urls),
                )
                .await
                .unwrap()
            }
        };
        // Keys spread over the slots, and so over the three primaries.
        let spread = connect("spread:").await;
        for n in 0..30 {
            spread.set(format!("k{n}"), n).await.unwrap();
        }
        for n in 0..30 {
            assert_eq!(
                spread.get(format!("k{n}")).await.unwrap().as_deref(),
                Some(&json!(n))
            );
        }
        assert_eq!(spread.incr("hits", 2).await.unwrap(), 2);
        assert_eq!(spread.scan_prefix("k").await.unwrap().len(), 30);
        // One hash tag: every call, the feed included.
        let kv = connect("{tls}:").await;
        kv.mset([("a", 1), ("b", 2)]).await.unwrap();
        let updated = kv
            .update("a", |v| v.and_then(Value::as_i64).map(|n| json!(n + 1)))
            .await;
        assert_eq!(updated.unwrap().as_deref(), Some(&json!(2)));
        kv.transaction(|txn| {
            let b = txn.get("b").and_then(Value::as_i64).unwrap_or(0);
            txn.set("c", b * 10);
        })
        .await
        .unwrap();
        assert_eq!(kv.get("c").await.unwrap().as_deref(), Some(&json!(20)));
        a_watcher_sees_a_set(&kv, "", "d", 4).await;
        // Without the CA: the certificate is refused at connect, saying so.
        let refused = bounded(
            "connect",
            KvHandle::builder()
                .prefix("{tls}:")
                .redis_cluster(cluster.urls()),
        )
        .await;
        let (kind, message) = backend(refused);
        assert_eq!(kind, BackendErrorKind::Config, "{message}");
        assert!(message.contains("unknown issuer"), "{message}");
    }

    #[tokio::test]
    async fn a_handle_over_rediss_with_its_own_ca_runs_calls() {
        let test = "a_handle_over_rediss_with_its_own_ca_runs_calls";
        let Some(server) = TlsServer::start(test, ServerCert::Good, ClientAuth::Optional).await
        else {
            return;
        };
        let kv = connect(&server).await.unwrap();
        kv.set("greeting", "hello").await.unwrap();
        assert_eq!(
            kv.get("greeting").await.unwrap().as_deref(),
            Some(&json!("hello"))
        );
        assert_eq!(kv.incr("hits", 2).await.unwrap(), 2);
        assert_eq!(kv.incr("hits", 3).await.unwrap(), 5);
        assert_eq!(kv.list_push("log", [1, 2, 3]).await.unwrap(), 3);
        assert_eq!(
            kv.list_pop_front("log", 2).await.unwrap(),
            vec![json!(1), json!(2)]
        );
        let item = json!({"id": "a", "n": 1});
        let list = kv
            .list_append_unique("jobs", [item.clone(), item.clone()])
            .await
            .unwrap();
        assert_eq!(list.into_vec(), vec![item]);
        assert_eq!(kv.list_pop_all("log").await.unwrap(), vec![json!(3)]);
        assert_eq!(
            kv.scan_prefix("").await.unwrap(),
            vec!["greeting", "hits", "jobs"]
        );
        // A second handle (another connection) sees the same data over TLS.
        let other = connect(&server).await.unwrap();
        assert_eq!(other.get("hits").await.unwrap().as_deref(), Some(&json!(5)));
    }

    /// Connecting fails with a `Config` error whose message contains each of `says`.
    async fn refused(builder: ephemeral_kv::KvBuilder, url: String, says: &[&str]) -> String {
        let (kind, message) = backend(bounded("connect", builder.redis(&url)).await);
        assert_eq!(kind, BackendErrorKind::Config, "{message}");
        for part in says {
            assert!(message.contains(part), "`{part}` not in: {message}");
        }
        assert!(
            message.starts_with(&format!(
                "cannot connect to Redis at {}: ",
                url.trim_start_matches("rediss://")
            )),
            "{message}"
        );
        println!("refused as expected: {message}");
        message
    }

    #[tokio::test]
    async fn an_unknown_issuer_is_a_clear_error() {
        let test = "an_unknown_issuer_is_a_clear_error";
        let Some(server) = TlsServer::start(test, ServerCert::Good, ClientAuth::Optional).await
        else {
            return;
        };
        // The system's roots alone do not know the test CA.
        refused(
            KvHandle::builder(),
            server.url(),
            &[
                "unknown issuer",
                "neither among the system's roots nor given",
            ],
        )
        .await;
        // Nor does another CA.
        refused(
            KvHandle::builder().redis_ca_certificate(Ca::new("another CA").pem()),
            server.url(),
            &["unknown issuer"],
        )
        .await;
        // A server whose certificate another CA signed, with the test CA given.
        let Some(stranger) =
            TlsServer::start(test, ServerCert::UnknownIssuer, ClientAuth::Optional).await
        else {
            return;
        };
        let message = refused(
            KvHandle::builder().redis_ca_certificate(stranger.ca.pem()),
            stranger.url(),
            &["the server's TLS certificate has an unknown issuer"],
        )
        .await;
        assert!(
            message.contains("UnknownIssuer"),
            "rustls's words kept: {message}"
        );
    }

    #[tokio::test]
    async fn a_certificate_for_another_host_is_a_clear_error() {
        let test = "a_certificate_for_another_host_is_a_clear_error";
        let Some(server) =
            TlsServer::start(test, ServerCert::WrongHost, ClientAuth::Optional).await
        else {
            return;
        };
        refused(
            KvHandle::builder().redis_ca_certificate(server.ca.pem()),
            server.url(),
            &[
                "the server's TLS certificate is for another host name",
                "not valid for `127.0.0.1`",
                "wrong.example.test",
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn an_expired_certificate_is_a_clear_error() {
        let test = "an_expired_certificate_is_a_clear_error";
        let Some(server) = TlsServer::start(test, ServerCert::Expired, ClientAuth::Optional).await
        else {
            return;
        };
        refused(
            KvHandle::builder().redis_ca_certificate(server.ca.pem()),
            server.url(),
            &["the server's TLS certificate has expired"],
        )
        .await;
    }

    #[tokio::test]
    async fn mutual_tls_works_with_a_client_certificate_and_is_refused_without() {
        let test = "mutual_tls_works_with_a_client_certificate_and_is_refused_without";
        let Some(server) = TlsServer::start(test, ServerCert::Good, ClientAuth::Required).await
        else {
            return;
        };
        let client = server.client_certificate();
        let kv = bounded(
            "connect",
            KvHandle::builder()
                .prefix("m:")
                .redis_ca_certificate(server.ca.pem())
                .redis_client_certificate(client.cert_pem.clone(), client.key_pem.clone())
                .redis(server.url()),
        )
        .await
        .unwrap();
        kv.set("k", json!({"a": [1, 2]})).await.unwrap();
        assert_eq!(
            kv.get("k").await.unwrap().as_deref(),
            Some(&json!({"a": [1, 2]}))
        );
        assert_eq!(kv.incr("n", 1).await.unwrap(), 1);

        refused(
            KvHandle::builder().redis_ca_certificate(server.ca.pem()),
            server.url(),
            &[
                "the server requires a client certificate",
                "redis_client_certificate",
            ],
        )
        .await;
        // A certificate of a CA the server does not trust.
        let stranger = Ca::new("a CA the server does not trust").issue(&["client"], false);
        refused(
            KvHandle::builder()
                .redis_ca_certificate(server.ca.pem())
                .redis_client_certificate(stranger.cert_pem, stranger.key_pem),
            server.url(),
            &["the server refused the client certificate"],
        )
        .await;
    }

    #[tokio::test]
    async fn tls_settings_are_checked_before_connecting() {
        let pem = Ca::new("ca").pem();
        // TLS settings on a plain URL.
        let (kind, message) = backend(
            KvHandle::builder()
                .redis_ca_certificate(pem.clone())
                .redis("redis://127.0.0.1:1")
                .await,
        );
        assert_eq!(kind, BackendErrorKind::Config);
        assert!(message.contains("need a `rediss://` URL"), "{message}");
        // PEM without a certificate, and a key that is no key.
        let (kind, message) = backend(
            KvHandle::builder()
                .redis_ca_certificate("junk")
                .redis("rediss://127.0.0.1:1")
                .await,
        );
        assert_eq!(kind, BackendErrorKind::Config);
        assert!(message.contains("redis_ca_certificate: no `-----BEGIN CERTIFICATE"));
        let (kind, message) = backend(
            KvHandle::builder()
                .redis_client_certificate(pem.clone(), pem.clone())
                .redis("rediss://127.0.0.1:1")
                .await,
        );
        assert_eq!(kind, BackendErrorKind::Config);
        assert!(
            message.contains("redis_client_certificate (key): no private key"),
            "{message}"
        );
        // The builder's Debug shows no key material.
        let builder = KvHandle::builder().redis_client_certificate(pem.clone(), "SECRET KEY");
        let debug = format!("{builder:?}");
        assert!(
            !debug.contains("SECRET") && !debug.contains("BEGIN"),
            "{debug}"
        );
        // Nothing listens on port 1: a connection error, not a certificate one.
        let (kind, message) = backend(
            bounded(
                "connect",
                KvHandle::builder()
                    .redis_ca_certificate(pem)
                    .redis("rediss://127.0.0.1:1"),
            )
            .await,
        );
        assert_eq!(kind, BackendErrorKind::Connection, "{message}");
        assert!(message.starts_with("cannot connect to Redis at 127.0.0.1:1: "));
    }

    #[tokio::test]
    async fn rediss_to_a_plain_port_says_it_is_not_tls() {
        let test = "rediss_to_a_plain_port_says_it_is_not_tls";
        let Some(server) = RedisServer::start(test).await else {
            return;
        };
        let url = server.url().replace("redis://", "rediss://");
        let (kind, message) = backend(bounded("connect", KvHandle::builder().redis(&url)).await);
        assert_eq!(kind, BackendErrorKind::Timeout, "{message}");
        assert!(
            message.starts_with("cannot connect to Redis at 127.0.0.1:")
                && message.contains("no answer within 3s")
                && message.contains("a plain, non-TLS port never answers a TLS client"),
            "{message}"
        );
    }
}

#[cfg(feature = "redis")]
mod acl {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use ephemeral_kv::Ttl;
    use serde_json::{json, Value};

    use super::support::redis_acl::AclServer;
    use super::support::redis_process::cli;
    use super::*;

    #[tokio::test]
    async fn a_user_confined_to_the_prefix_runs_every_call() {
        let test = "a_user_confined_to_the_prefix_runs_every_call";
        let Some(server) = AclServer::start(test).await else {
            return;
        };
        let kv = bounded(
            "connect",
            KvHandle::builder().prefix("app:").redis(server.app_url()),
        )
        .await
        .unwrap();
        bounded("every call", async {
            kv.set("a", 1).await.unwrap();
            kv.set("s", "text")
                .ttl(Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!(1)));
            kv.mset([("b", json!(2)), ("c", json!([3]))]).await.unwrap();
            let values: Vec<Option<Value>> = kv
                .mget(["a", "b", "c", "none"])
                .await
                .unwrap()
                .into_iter()
                .map(|value| value.as_deref().cloned())
                .collect();
            assert_eq!(
                values,
                vec![Some(json!(1)), Some(json!(2)), Some(json!([3])), None]
            );
            assert!(kv.exists("a").await.unwrap());
            assert!(!kv.exists("none").await.unwrap());
            assert!(kv.expire("a", Duration::from_secs(30)).await.unwrap());
            assert!(!kv.expire("none", Duration::from_secs(30)).await.unwrap());
            match kv.ttl("a").await.unwrap() {
                Ttl::Expires(left) => assert!(
                    left > Duration::from_secs(25) && left <= Duration::from_secs(30),
                    "{left:?}"
                ),
                other => panic!("a TTL was set: {other:?}"),
            }
            assert!(kv.persist("a").await.unwrap());
            assert_eq!(kv.ttl("a").await.unwrap(), Ttl::NoExpiry);
            assert_eq!(kv.ttl("none").await.unwrap(), Ttl::Missing);
            kv.delete("b").await.unwrap();
            assert_eq!(kv.get("b").await.unwrap(), None);
            assert_eq!(kv.incr("n", 5).await.unwrap(), 5);
            assert_eq!(kv.incr("n", -2).await.unwrap(), 3);
            assert!(kv.set_if_absent("lock", "me").await.unwrap());
            assert!(!kv.set_if_absent("lock", "you").await.unwrap());
            assert!(kv
                .compare_and_set("lock", Some(json!("me")), "you")
                .await
                .unwrap());
            assert!(!kv
                .compare_and_set("lock", Some(json!("me")), "them")
                .await
                .unwrap());
            assert_eq!(kv.get_del("lock").await.unwrap(), Some(json!("you")));
            assert_eq!(kv.get_del("lock").await.unwrap(), None);
            assert_eq!(kv.list_push("q", [1, 2, 3]).await.unwrap(), 3);
            assert_eq!(kv.list_pop_front("q", 1).await.unwrap(), vec![json!(1)]);
            assert_eq!(
                kv.list_pop_all("q").await.unwrap(),
                vec![json!(2), json!(3)]
            );
            let (x, y) = (json!({"id": "x"}), json!({"id": "y"}));
            kv.list_append_unique("u", [x.clone()]).await.unwrap();
            let list = kv
                .list_append_unique("u", [x.clone(), y.clone()])
                .await
                .unwrap();
            assert_eq!(list.into_vec(), vec![x, y]);
            let updated = kv
                .update("n", |n| n.and_then(Value::as_i64).map(|n| json!(n * 10)))
                .await
                .unwrap();
            assert_eq!(updated.as_deref(), Some(&json!(30)));
            let sum = kv
                .transaction(|txn| {
                    let a = txn.get("a").and_then(Value::as_i64).unwrap_or(0);
                    let n = txn.get("n").and_then(Value::as_i64).unwrap_or(0);
                    txn.set("sum", a + n);
                    txn.delete("c");
                    a + n
                })
                .await
                .unwrap();
            assert_eq!(sum, 31);
            assert_eq!(kv.get("sum").await.unwrap().as_deref(), Some(&json!(31)));
            assert_eq!(
                kv.scan_prefix("").await.unwrap(),
                vec!["a", "n", "s", "sum", "u"]
            );
            assert_eq!(kv.stats().await.unwrap().entries, 5);
            // The change feed, whose scripts are in the library too: a watch, a blocking pop.
            a_watcher_sees_a_set(&kv, "w", "w1", 1).await;
            kv.list_push("jobs", [json!({"id": 1})]).await.unwrap();
            let popped = kv.list_pop_front("jobs", 1).wait(Duration::from_secs(1));
            assert_eq!(popped.await.unwrap(), vec![json!({"id": 1})]);
        })
        .await;
        // The keys are where the ACL allows, under `app:`.
        assert_eq!(cli(server.port(), &["GET", "app:sum"]), "31");
    }

    #[tokio::test]
    async fn a_key_outside_the_users_prefix_is_refused_clearly_and_at_once() {
        let test = "a_key_outside_the_users_prefix_is_refused_clearly_and_at_once";
        let Some(server) = AclServer::start(test).await else {
            return;
        };
        cli(server.port(), &["SET", "other:k", "1"]);
        let kv = bounded(
            "connect",
            KvHandle::builder().prefix("other:").redis(server.app_url()),
        )
        .await
        .expect("connecting needs no key: it succeeds");
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let checks: Vec<(&str, Result<String, KvError>)> = bounded("refused calls", async {
            fn debug<T: std::fmt::Debug>(result: Result<T, KvError>) -> Result<String, KvError> {
                result.map(|value| format!("{value:?}"))
            }
            vec![
                ("set", debug(kv.set("k", 1).await)),
                ("get", debug(kv.get("k").await)),
                ("mget", debug(kv.mget(["k", "j"]).await)),
                ("mset", debug(kv.mset([("k", 1), ("j", 2)]).await)),
                ("delete", debug(kv.delete("k").await)),
                (
                    "expire",
                    debug(kv.expire("k", Duration::from_secs(9)).await),
                ),
                ("persist", debug(kv.persist("k").await)),
                ("exists", debug(kv.exists("k").await)),
                ("ttl", debug(kv.ttl("k").await)),
                ("incr", debug(kv.incr("k", 1).await)),
                ("set_if_absent", debug(kv.set_if_absent("k", 1).await)),
                (
                    "compare_and_set",
                    debug(kv.compare_and_set("k", None, 1).await),
                ),
                ("get_del", debug(kv.get_del("k").await)),
                ("list_push", debug(kv.list_push("k", [1]).await)),
                ("list_pop_front", debug(kv.list_pop_front("k", 1).await)),
                ("list_pop_all", debug(kv.list_pop_all("k").await)),
                (
                    "list_append_unique",
                    debug(kv.list_append_unique("k", [json!({"id": 1})]).await),
                ),
                (
                    "update",
                    debug(
                        kv.update("k", move |_| {
                            counted.fetch_add(1, Ordering::Relaxed);
                            Some(json!(2))
                        })
                        .await,
                    ),
                ),
                (
                    "transaction",
                    debug(
                        kv.transaction(|txn| {
                            txn.set("k", 3);
                        })
                        .await,
                    ),
                ),
            ]
        })
        .await;
        // Redis's NOPERM reply names neither the key nor the rule (`ACL LOG` does); the executor
        // adds the key, for every call (an `mget`'s or `mset`'s first key).
        let mut unclear = Vec::new();
        for (call, result) in checks {
            let (kind, message) = backend(result);
            assert_eq!(kind, BackendErrorKind::Refused, "{call}: {message}");
            assert!(
                message.contains("NoPerm: this user has no permissions to access one of the keys"),
                "{call}: {message}"
            );
            if !message.starts_with("redis refused the command on key `other:k`: ") {
                unclear.push(format!("{call}: {message}"));
            }
        }
        assert!(
            unclear.is_empty(),
            "the key is not named:\n{}",
            unclear.join("\n")
        );
        // Refused before its closure ever ran, or after one run: never a retry loop.
        assert!(runs.load(Ordering::Relaxed) <= 1);
        // The key is untouched.
        assert_eq!(cli(server.port(), &["GET", "other:k"]), "1");
        // `SCAN` and `DBSIZE` take no key, so the ACL's key patterns do not apply to them.
        assert_eq!(kv.scan_prefix("").await.unwrap(), vec!["k"]);
    }

    #[tokio::test]
    async fn a_wrong_password_is_refused_at_connect() {
        let test = "a_wrong_password_is_refused_at_connect";
        let Some(server) = AclServer::start(test).await else {
            return;
        };
        let url = server.app_url().replace(":pw@", ":nope@");
        let (kind, message) = backend(bounded("connect", KvHandle::builder().redis(&url)).await);
        assert_eq!(kind, BackendErrorKind::Refused, "{message}");
        assert!(
            message.contains("the server refused the URL's credentials for user `app`"),
            "{message}"
        );
        assert!(!message.contains("nope"), "the password leaked: {message}");
        // A user that does not exist, the same.
        let url = server.app_url().replace("app:pw@", "ghost:pw@");
        let (kind, message) = backend(bounded("connect", KvHandle::builder().redis(&url)).await);
        assert_eq!(kind, BackendErrorKind::Refused, "{message}");
        assert!(message.contains("for user `ghost`"), "{message}");
    }
}

/// The 6-node cluster of `support::redis_cluster` starts, answers, and fails over when a primary
/// is killed. It uses no handle, only `redis-server` and `redis-cli`: it checks the test servers
/// the Cluster executor's tests run on (with the Redis tests, under `--features redis`).
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_smoke_test_starts_answers_and_fails_over() {
    use std::time::Duration;
    use support::redis_cluster::{RedisCluster, NODES};
    use support::redis_process::cli;

    let test = "cluster_smoke_test_starts_answers_and_fails_over";
    let Some(mut cluster) = RedisCluster::start(test).await else {
        return;
    };
    assert_eq!(cluster.ports().len(), NODES);
    assert_eq!(cluster.primaries().len(), 3);
    let port = cluster.ports()[0];
    // `-c` follows the MOVED redirections: keys land on the three primaries' slots.
    for key in ["a", "b", "c", "d"] {
        assert_eq!(cli(port, &["-c", "SET", key, key]), "OK");
    }
    let (killed, promoted) = cluster.kill_primary(Duration::from_secs(30)).await;
    assert_ne!(killed, promoted);
    assert_eq!(cluster.ports().len(), NODES - 1);
    assert!(!cluster.ports().contains(&killed));
    let port = cluster.ports()[0];
    for key in ["a", "b", "c", "d"] {
        assert_eq!(
            cli(port, &["-c", "GET", key]),
            key,
            "{key} after the failover"
        );
    }
    assert!(cluster.primaries().contains(&promoted));
}

/// The Redis Cluster executor (`KvBuilder::redis_cluster`) on the 6-node cluster of
/// `support::redis_cluster`: the refusals across hash slots (the conformance suite runs on it too,
/// `tests/conformance/`), and a primary killed under load.
#[cfg(feature = "redis")]
mod cluster {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    use super::support::redis_cluster::RedisCluster;
    use super::support::redis_process::cli;
    use super::*;

    /// A handle with `prefix` on `cluster`.
    async fn connect(cluster: &RedisCluster, prefix: &str) -> KvHandle {
        bounded(
            "connect",
            KvHandle::builder()
                .prefix(prefix)
                .redis_cluster(cluster.urls()),
        )
        .await
        .unwrap()
    }

    /// The message of an `InvalidArgument`; panics on anything else.
    fn invalid(result: Result<impl std::fmt::Debug, KvError>) -> String {
        match result {
            Err(error @ KvError::InvalidArgument { .. }) => error.to_string(),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn across_slots_reads_work_and_mset_transaction_and_the_feed_are_refused_first() {
        let test = "across_slots_reads_work_and_mset_transaction_and_the_feed_are_refused_first";
        let Some(cluster) = RedisCluster::start(test).await else {
            return;
        };
        let port = cluster.ports()[0];
        let slot = |key: &str| cli(port, &["CLUSTER", "KEYSLOT", key]);
        assert_ne!(slot("x:a"), slot("x:b"), "the test needs keys in two slots");
        let kv = connect(&cluster, "x:").await;

        // Every call naming one key works on any slot.
        for key in ["a", "b", "c", "d", "e"] {
            kv.set(key, key).await.unwrap();
            assert_eq!(kv.incr(format!("n:{key}"), 2).await.unwrap(), 2);
            assert_eq!(kv.list_push(format!("l:{key}"), [1, 2]).await.unwrap(), 2);
        }
        // mget and scan_prefix work across slots.
        let values = kv.mget(["a", "zz", "b", "c", "a"]).await.unwrap();
        let values: Vec<Option<Value>> =
            values.into_iter().map(|v| v.as_deref().cloned()).collect();
        assert_eq!(
            values,
            vec![
                Some(json!("a")),
                None,
                Some(json!("b")),
                Some(json!("c")),
                Some(json!("a"))
            ]
        );
        assert_eq!(
            kv.scan_prefix("").limit(7).await.unwrap(),
            vec!["a", "b", "c", "d", "e", "l:a", "l:b"]
        );
        assert_eq!(kv.scan_prefix("n:").await.unwrap().len(), 5);

        // mset across slots: refused, naming two keys, nothing written.
        let refused = invalid(kv.mset([("new:1", 1), ("a", 2), ("b", 3)]).await);
        let (first, second) = if slot("x:new:1") != slot("x:a") {
            ("x:new:1", "x:a")
        } else {
            ("x:new:1", "x:b")
        };
        assert_eq!(
            refused,
            format!(
                "invalid argument for key `{first}`: `mset` on a Redis Cluster needs its keys in \
                 one hash slot, but `{first}` is in slot {} and `{second}` in slot {}; nothing \
                 was written. Give the handle a prefix with a hash tag (such as `{{tenant-7}}:`), \
                 which puts all its keys in one slot",
                slot(first),
                slot(second)
            )
        );
        assert_eq!(kv.get("new:1").await.unwrap(), None);
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!("a")));

        // A transaction reading or writing keys of two slots: refused, nothing written.
        let refused = invalid(
            kv.transaction(|txn| {
                txn.set("a", 10);
                txn.set("b", 20);
            })
            .await,
        );
        assert!(refused.contains("`transaction` on a Redis Cluster needs its keys in one hash slot, but `x:a` is in slot"), "{refused}");
        let refused = invalid(
            kv.transaction(|txn| {
                let a = txn.get("a").cloned();
                let b = txn.get("b").cloned();
                txn.set("c", json!([a, b]));
            })
            .await,
        );
        assert!(
            refused.contains("`transaction` on a Redis Cluster needs its keys in one hash slot"),
            "{refused}"
        );
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!("a")));
        assert_eq!(kv.get("b").await.unwrap().as_deref(), Some(&json!("b")));
        assert_eq!(kv.get("c").await.unwrap().as_deref(), Some(&json!("c")));
        // ... but one over keys of one slot is applied, and update works on any key.
        kv.transaction(|txn| {
            let n = txn
                .get("a")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            txn.set("a", format!("{n}!"));
        })
        .await
        .unwrap();
        assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&json!("a!")));
        for key in ["b", "c", "d"] {
            let updated = kv.update(key, |v| v.map(|v| json!([v]))).await.unwrap();
            assert_eq!(updated.as_deref(), Some(&json!([key])));
        }

        // The change feed without a hash tag: refused with advice.
        let advice = "on a Redis Cluster needs the change stream in the slot of the keys it \
                      records, which takes a builder prefix with a hash tag: build the handle \
                      with `.prefix(\"{x}:\")` (or any prefix holding `{tag}`) instead of `x:`";
        assert_eq!(
            invalid(kv.watch("").await),
            format!("invalid argument for key `x:`: `watch` {advice}")
        );
        assert_eq!(
            invalid(kv.wait_for("a").await),
            format!("invalid argument for key `x:`: `wait_for` {advice}")
        );
        assert_eq!(
            invalid(
                kv.list_pop_front("l:a", 1)
                    .wait(Duration::from_secs(1))
                    .await
            ),
            format!("invalid argument for key `x:`: `list_pop_front(..).wait(..)` {advice}")
        );
        // A `{` that makes no hash tag: the key's id index cannot share its slot.
        assert!(invalid(kv.set("odd{}key", 1).await).contains("a key whose `{` makes no hash tag"));

        // Under a hash tag all of it works, and stays atomic.
        let tagged = connect(&cluster, "{t}:").await;
        tagged.mset([("a", 1), ("b", 2)]).await.unwrap();
        tagged
            .transaction(|txn| {
                let a = txn.get("a").and_then(Value::as_i64).unwrap_or(0);
                txn.set("b", a + 10);
            })
            .await
            .unwrap();
        assert_eq!(tagged.get("b").await.unwrap().as_deref(), Some(&json!(11)));
        a_watcher_sees_a_set(&tagged, "", "c", 3).await;
    }

    /// An ACL user confined to its prefix (set up on every node) runs the calls of a handle on
    /// the cluster: its credentials reach every node, the executor's own node connections and
    /// the change feed's included, and a key outside its prefix is refused, naming the key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acl_user_confined_to_its_prefix_runs_the_calls_on_the_cluster() {
        let test = "an_acl_user_confined_to_its_prefix_runs_the_calls_on_the_cluster";
        let Some(cluster) = RedisCluster::start(test).await else {
            return;
        };
        // `app`: the documented minimal line and the two commands a cluster client reads the slot
        // map with (docs/redis-deploy.md); `wide`: the shorter `+@all -@dangerous` line.
        let mut minimal: Vec<&str> = vec!["ACL", "SETUSER", "app"];
        minimal.extend_from_slice(super::support::redis_acl::APP_RULES);
        minimal.extend(["+cluster|slots", "+cluster|shards"]);
        let wide = [
            "ACL",
            "SETUSER",
            "wide",
            "on",
            ">pw",
            "~app:*",
            "&app:*",
            "+@all",
            "-@dangerous",
        ];
        for port in cluster.ports() {
            assert_eq!(cli(port, &minimal), "OK");
            assert_eq!(cli(port, &wide), "OK");
        }
        for (user, tag) in [("app", "{t}"), ("wide", "{w}")] {
            let urls: Vec<String> = cluster
                .ports()
                .into_iter()
                .map(|port| format!("redis://{user}:pw@127.0.0.1:{port}"))
                .collect();
            let kv = bounded(
                "connect",
                KvHandle::builder()
                    .prefix(format!("app:{tag}:"))
                    .redis_cluster(urls.clone()),
            )
            .await
            .unwrap();
            kv.mset([("a", 1), ("b", 2)]).await.unwrap();
            assert_eq!(kv.incr("n", 3).await.unwrap(), 3);
            let updated = kv
                .update("a", |v| v.and_then(Value::as_i64).map(|n| json!(n + 1)))
                .await;
            assert_eq!(updated.unwrap().as_deref(), Some(&json!(2)), "{user}");
            kv.transaction(|txn| {
                let b = txn.get("b").and_then(Value::as_i64).unwrap_or(0);
                txn.set("c", b * 10);
            })
            .await
            .unwrap();
            assert_eq!(kv.scan_prefix("").await.unwrap(), vec!["a", "b", "c", "n"]);
            assert_eq!(kv.stats().await.unwrap().entries, 4, "{user}");
            a_watcher_sees_a_set(&kv, "", "d", 4).await;
            kv.list_push("jobs", [json!({"id": 1})]).await.unwrap();
            let popped = kv
                .list_pop_front("jobs", 1)
                .wait(Duration::from_secs(1))
                .await;
            assert_eq!(popped.unwrap(), vec![json!({"id": 1})], "{user}");
        }
        let urls: Vec<String> = cluster
            .ports()
            .into_iter()
            .map(|port| format!("redis://app:pw@127.0.0.1:{port}"))
            .collect();
        // Outside the prefix: refused, naming the key.
        let outside = bounded(
            "connect",
            KvHandle::builder().prefix("other:{t}:").redis_cluster(urls),
        )
        .await
        .unwrap();
        let (kind, message) = backend(outside.set("k", 1).await);
        assert_eq!(kind, BackendErrorKind::Refused);
        assert!(
            message.starts_with("redis refused the command on key `other:{t}:k`: NoPerm"),
            "{message}"
        );
    }

    /// A slot moved to another primary (a resharding) under a handle that used it: every `incr`
    /// after it is answered with the right count, none applied twice or lost (the first one, a
    /// pipeline of one command refused with `MOVED`, did not run and is sent again once); `update`
    /// and `transaction` follow the `MOVED` (nothing had run) and succeed on their first call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_moved_slot_never_applies_a_write_twice() {
        let test = "a_moved_slot_never_applies_a_write_twice";
        let Some(cluster) = RedisCluster::start(test).await else {
            return;
        };
        let kv = connect(&cluster, "m:{mv}").await;
        for _ in 0..5 {
            kv.incr("n", 1).await.unwrap();
        }
        kv.update("u", |_| Some(json!(1))).await.unwrap();
        let before = cluster.owner("m:{mv}n");
        let after = cluster.move_slot("m:{mv}n");
        assert_ne!(before, after);
        // Every incr answered Ok added one; every one refused (MOVED) added none.
        let (mut answered, mut refused) = (0, 0);
        for _ in 0..20 {
            match bounded("incr", kv.incr("n", 1)).await {
                Ok(n) => {
                    answered += 1;
                    assert_eq!(n, 5 + answered, "an incr answered once adds once");
                }
                Err(KvError::Backend { message, .. }) => {
                    assert!(
                        message.starts_with("redis pipeline failed: Moved: "),
                        "{message}"
                    );
                    refused += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        // A pipeline of one command refused with MOVED did not run: it is sent again, once.
        assert_eq!(refused, 0, "incrs refused after the move");
        assert_eq!(
            kv.get("n").await.unwrap().as_deref(),
            Some(&json!(5 + answered))
        );
        assert_eq!(cli(after, &["GET", "m:{mv}n"]), (5 + answered).to_string());
        // The optimistic calls run on a node connection of their own, which still points at the
        // old owner: it answers MOVED, and they follow it.
        let updated = bounded(
            "update",
            kv.update("u", |v| v.and_then(Value::as_i64).map(|n| json!(n + 1))),
        )
        .await
        .unwrap();
        assert_eq!(updated.as_deref(), Some(&json!(2)));
        bounded(
            "transaction",
            kv.transaction(|txn| {
                let n = txn.get("u").and_then(Value::as_i64).unwrap_or(0);
                txn.set("u", n + 1);
            }),
        )
        .await
        .unwrap();
        assert_eq!(cli(after, &["GET", "m:{mv}u"]), "3");
    }

    /// Calls from 32 tasks (`incr`, and `update` adding one to a JSON counter) on keys of every
    /// primary while one primary is killed: every call ends (none hangs past [`BOUND`]), with a
    /// value or `KvError::Backend`; once a replica has taken over, calls succeed again; and no
    /// write is applied twice: each counter is at most its calls answered plus its calls failed.
    /// An answered write may be lost only by the server itself (asynchronous replication: a write
    /// acknowledged just before the kill, not yet on the replica), which the test reports.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_primary_killed_under_load_answers_every_call_and_applies_none_twice() {
        let test = "a_primary_killed_under_load_answers_every_call_and_applies_none_twice";
        let Some(mut cluster) = RedisCluster::start(test).await else {
            return;
        };
        let kv = connect(&cluster, "f:").await;
        const KEYS: usize = 16;
        const TASKS: usize = 32;
        // Per key: (answered, failed), for incr and for update.
        let tally: Arc<Mutex<HashMap<String, [u64; 4]>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (kv, tally, stop) = (kv.clone(), Arc::clone(&tally), Arc::clone(&stop));
            tasks.push(tokio::spawn(async move {
                let mut i = task;
                while !stop.load(Ordering::Relaxed) {
                    i += TASKS;
                    let key = format!("k{}", i % KEYS);
                    let (slot, result) = if i % 4 == 0 {
                        let key = format!("u:{key}");
                        let call = kv.update(&key, |v| {
                            Some(json!(v.and_then(Value::as_i64).unwrap_or(0) + 1))
                        });
                        (2, bounded("update", call).await.map(drop))
                    } else {
                        (0, bounded("incr", kv.incr(&key, 1)).await.map(drop))
                    };
                    let index = match result {
                        Ok(()) => slot,
                        Err(KvError::Backend { .. }) => slot + 1,
                        Err(other) => panic!("a call failed with {other:?}, not Backend"),
                    };
                    let name = if slot == 0 { key } else { format!("u:{key}") };
                    tally.lock().unwrap().entry(name).or_default()[index] += 1;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (killed, promoted) = cluster.kill_primary(Duration::from_secs(30)).await;
        // The handle works again once the replica has taken over: every key answers.
        let recovered = std::time::Instant::now();
        for n in 0..KEYS {
            let key = format!("k{n}");
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                match bounded("get", kv.get(&key)).await {
                    Ok(_) => break,
                    Err(KvError::Backend { .. }) if std::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(other) => panic!("{key} after the failover: {other:?}"),
                }
            }
        }
        let recovery = recovered.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.unwrap();
        }
        let tally = tally.lock().unwrap().clone();
        let (mut answered, mut failed, mut lost) = (0, 0, 0);
        for (key, [incr_ok, incr_failed, update_ok, update_failed]) in &tally {
            let (ok, failures) = (incr_ok + update_ok, incr_failed + update_failed);
            let value = kv.get(key).await.unwrap();
            let value = value.as_deref().and_then(Value::as_i64).unwrap_or(0) as u64;
            assert!(
                value <= ok + failures,
                "{key} holds {value}, more than its {ok} answered and {failures} failed calls: a \
                 write was applied twice"
            );
            lost += ok.saturating_sub(value);
            answered += ok;
            failed += failures;
        }
        eprintln!(
            "killed primary {killed}, {promoted} took over; every key answered again {recovery:?} \
             after the failover; {answered} calls answered, {failed} failed with Backend, {lost} \
             answered writes lost by the server"
        );
        assert!(
            answered > 0 && failed > 0,
            "the load did not span the failover"
        );
    }
}
