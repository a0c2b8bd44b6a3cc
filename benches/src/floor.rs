//! The floor of a call: a bare actor on tokio (a bounded `mpsc` of requests, a `oneshot` per
//! answer, a `HashMap` on the owner task, the mailbox drained 64 at a time) beside
//! [`KvHandle`], doing the same `get`s and `set`s from 1 and from 16 tasks (and `set`s of the capped
//! log's events, built in the loop). The bare actor is the
//! least any store of this shape can cost on this machine; what `KvHandle` costs above it is the
//! crate's call shape (its pending call value, span, checks, command enum and owner loop).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemeral_kv::KvHandle;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::seed;
use crate::workloads::small_value;

/// Keys both stores hold and the calls read and write.
pub const KEYS: usize = 1_000;

/// One request to the bare actor, with where to answer it.
#[derive(Debug)]
enum Request {
    Get(String, oneshot::Sender<Option<Arc<Value>>>),
    Set(String, Value, oneshot::Sender<()>),
}

/// A handle to the bare actor; its owner task ends with the last handle.
#[derive(Debug, Clone)]
pub struct Bare {
    mailbox: mpsc::Sender<Request>,
}

impl Bare {
    /// Spawns the owner task, with the mailbox capacity `KvHandle` has by default.
    pub fn spawn() -> Bare {
        let (mailbox, mut requests) = mpsc::channel::<Request>(1024);
        tokio::spawn(async move {
            let mut map: HashMap<String, Arc<Value>> = HashMap::new();
            let mut batch = Vec::with_capacity(64);
            while requests.recv_many(&mut batch, 64).await > 0 {
                for request in batch.drain(..) {
                    match request {
                        Request::Get(key, reply) => {
                            let _ = reply.send(map.get(&key).cloned());
                        }
                        Request::Set(key, value, reply) => {
                            map.insert(key, Arc::new(value));
                            let _ = reply.send(());
                        }
                    }
                }
            }
        });
        Bare { mailbox }
    }
}

/// The two calls the comparison makes.
pub trait Calls: Clone + Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: String) -> impl std::future::Future<Output = Option<Arc<Value>>> + Send;
    /// Stores `value` at `key`.
    fn set(&self, key: String, value: Value) -> impl std::future::Future<Output = ()> + Send;
}

impl Calls for Bare {
    async fn get(&self, key: String) -> Option<Arc<Value>> {
        let (reply, answer) = oneshot::channel();
        self.mailbox.send(Request::Get(key, reply)).await.ok()?;
        answer.await.ok().flatten()
    }

    async fn set(&self, key: String, value: Value) {
        let (reply, answer) = oneshot::channel();
        if self
            .mailbox
            .send(Request::Set(key, value, reply))
            .await
            .is_ok()
        {
            let _ = answer.await;
        }
    }
}

impl Calls for KvHandle {
    async fn get(&self, key: String) -> Option<Arc<Value>> {
        KvHandle::get(self, key).await.ok().flatten()
    }

    async fn set(&self, key: String, value: Value) {
        let _ = KvHandle::set(self, key, value).await;
    }
}

/// Which call a run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `get` of a held key.
    Get,
    /// `set` of a held key to a small object.
    Set,
    /// `set` of a held key to an event of the capped log ([`seed::event`]), built in the loop:
    /// the call in the capped log's pattern, a few microseconds of the caller's own work between
    /// two calls and a value of 70 nodes moved to the owner task.
    Event,
}

/// The `i`th key.
fn key(i: usize) -> String {
    format!("key:{i}")
}

/// Fills `store` with [`KEYS`] keys.
pub async fn fill<S: Calls>(store: &S) {
    for i in 0..KEYS {
        store.set(key(i), small_value(i)).await;
    }
}

/// `calls` calls of `call` split over `tasks` spawned tasks; the time per call. The keys and
/// values are made inside the timed loop on both sides.
pub async fn per_call<S: Calls>(store: &S, call: Call, tasks: usize, calls: usize) -> Duration {
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (t..calls).step_by(tasks) {
                    let at = (i * 7919) % KEYS;
                    match call {
                        Call::Get => {
                            std::hint::black_box(store.get(key(at)).await);
                        }
                        Call::Set => store.set(key(at), small_value(i)).await,
                        Call::Event => store.set(key(at), seed::event(i)).await,
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a worker task");
    }
    started.elapsed() / calls as u32
}
