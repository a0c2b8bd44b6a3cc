//! The Redis backend against servers set up as in production (`docs/redis-deploy.md`):
//! - TLS (`--features redis-tls`): `rediss://` with a CA of the test's own, each certificate
//!   problem as a clear error at connect time, mutual TLS;
//! - ACL (`--features redis`): a user confined to the prefix `app:` runs every call of a handle,
//!   and is refused, clearly and at once, outside it;
//! - Redis Cluster (`--features redis`): a smoke test of the 6-node cluster the Cluster
//!   executor's tests will use (start, answer, fail over), through `redis-cli` alone.
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
        // adds the key for the calls below it runs as one command. The optimistic calls and the
        // multi-key ones do not name it yet: their errors come from `exec.rs`/`optimistic.rs`,
        // which the issue 17 rewrite replaces (it is asked to name the key there too).
        const KEY_NOT_NAMED_YET: &[&str] = &[
            "mget",
            "mset",
            "compare_and_set",
            "get_del",
            "list_push",
            "list_pop_front",
            "list_pop_all",
            "update",
            "transaction",
        ];
        for (call, result) in checks {
            let (kind, message) = backend(result);
            assert_eq!(kind, BackendErrorKind::Refused, "{call}: {message}");
            assert!(
                message.contains("NoPerm: this user has no permissions to access one of the keys"),
                "{call}: {message}"
            );
            if !KEY_NOT_NAMED_YET.contains(&call) {
                assert!(
                    message.starts_with("redis refused the command on key `other:k`: "),
                    "{call}: {message}"
                );
            }
        }
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
/// the Cluster executor will run on (with the Redis tests, under `--features redis`).
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
