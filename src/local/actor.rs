//! The owner task: the one task that holds the [`Store`], as an actor.
//!
//! Its loop: take a batch of commands from the mailbox, [`handle`](Owner::handle) each one whole,
//! and between batches remove a bounded slice of expired entries (active expiry). Because only
//! this task touches the store, every command is atomic and all commands are applied in one order,
//! with no lock.
//!
//! It stops when every [`KvHandle`](crate::KvHandle) is gone (the mailbox closes) or on
//! [`Command::Shutdown`], after answering everything that was queued before it.

use std::pin::pin;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::feeds::Feeds;
use super::store::Store;
use super::Config;
use crate::command::{Command, Message, Reply};
use crate::error::KvError;

/// How many commands the owner takes from the mailbox at once. Draining in batches saves a trip
/// through the channel's wake-up machinery per command when many callers are busy.
const BATCH: usize = 64;

/// How many expired entries active expiry removes between two batches of commands, so that a mass
/// expiry never holds up callers for long.
const EXPIRY_SLICE: usize = 256;

/// The largest change feed ring a `watch` may ask for (tokio's broadcast channel refuses more
/// than `usize::MAX / 2`; a ring this size already holds a million changes).
const MAX_FEED_CAPACITY: usize = 1 << 20;

/// The owner task's state: the store, its change feeds and waiters, and a shutdown in progress.
pub(crate) struct Owner {
    config: Config,
    store: Store,
    feeds: Feeds,
    /// Set by [`Command::Shutdown`]: answered once the task has stopped.
    shutdown: Option<Reply<()>>,
}

impl Owner {
    pub(crate) fn new(config: Config) -> Owner {
        Owner {
            config,
            store: Store::new(config.store, config.bound),
            feeds: Feeds::default(),
            shutdown: None,
        }
    }

    /// Runs the owner task until the mailbox closes or a shutdown command arrives.
    pub(crate) async fn run(mut self, mut mailbox: mpsc::Receiver<Message>) {
        tracing::info!(
            active_expiry = self.config.active_expiry,
            mailbox_capacity = self.config.mailbox_capacity,
            max_entries = self.config.bound.map(|bound| bound.max_entries),
            evict_volatile_ttl = self
                .config
                .bound
                .is_some_and(|bound| bound.evict_volatile_ttl),
            "ephemeral-kv owner task started"
        );
        let mut batch = Vec::with_capacity(BATCH);
        // One timer, re-armed only when the earliest deadline changes, wakes the task for active
        // expiry while no commands arrive.
        let mut timer = pin!(sleep_until(Instant::now()));
        let mut armed_for = None;

        loop {
            let next_deadline = self
                .config
                .active_expiry
                .then(|| self.store.next_deadline())
                .flatten();
            if let Some(deadline) = next_deadline {
                if armed_for != Some(deadline) {
                    timer.as_mut().reset(deadline);
                    armed_for = Some(deadline);
                }
            }

            tokio::select! {
                // Commands first: expiry is housekeeping and may wait for the next turn.
                biased;
                received = mailbox.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        break; // every handle is gone
                    }
                    for message in batch.drain(..) {
                        self.receive(message);
                        if self.shutdown.is_some() {
                            tracing::info!("ephemeral-kv owner task shutting down");
                            break;
                        }
                    }
                    if self.shutdown.is_some() {
                        // Commands queued after the shutdown are dropped unanswered: their callers
                        // get `KvError::Closed`, as does every later call.
                        mailbox.close();
                        break;
                    }
                }
                () = &mut timer, if next_deadline.is_some() => {}
            }

            if self.config.active_expiry {
                let expired = self.store.purge_expired(EXPIRY_SLICE, Instant::now());
                if expired > 0 {
                    tracing::debug!(expired, "active expiry removed expired entries");
                }
                self.feeds.publish(&mut self.store);
            }
        }

        drop(mailbox);
        let Owner {
            store, shutdown, ..
        } = self;
        drop(store);
        tracing::info!("ephemeral-kv owner task stopped");
        if let Some(reply) = shutdown {
            let _ = reply.send(Ok(()));
        }
    }

    /// Handles one message inside the caller's span, and logs what came of it at debug level
    /// (only while someone listens: otherwise this costs one check).
    fn receive(&mut self, Message { command, span }: Message) {
        let _in_callers_span = span.enter();
        let now = Instant::now();
        if !tracing::enabled!(tracing::Level::DEBUG) {
            self.handle(command, now);
            return;
        }
        let described = command.described();
        let outcome = self.handle(command, now);
        described.log(outcome, now.elapsed());
    }

    /// Applies one command at instant `now` and answers it; then hands the changes it made to the
    /// change feeds. Every command is here, in one match with no catch-all arm. Returns what came
    /// of it, for the log.
    fn handle(&mut self, command: Command, now: Instant) -> &'static str {
        let store = &mut self.store;
        store.note_command();
        let outcome = match command {
            Command::Get { key, reply } => found(reply, store.get(&key, now)),
            Command::Set {
                key,
                value,
                ttl,
                reply,
            } => done(reply, store.set(key, value, ttl, now)),
            Command::Delete { key, reply } => {
                store.delete(&key, now);
                done(reply, Ok(()))
            }
            Command::ListAppendUnique {
                key,
                items,
                id_key,
                ttl,
                reply,
            } => done(
                reply,
                store.list_append_unique(key, items, &id_key, ttl, now),
            ),
            Command::ListPopAll { key, reply } => found(reply, store.list_pop_all(&key, now)),
            Command::ListPush {
                key,
                items,
                max_len,
                ttl,
                reply,
            } => done(reply, store.list_push(key, items, max_len, ttl, now)),
            Command::ListPopFront { key, count, reply } => {
                done(reply, store.list_pop_front(&key, count, now))
            }
            Command::Mset {
                entries,
                ttl,
                reply,
            } => done(reply, store.mset(entries, ttl, now)),
            Command::Mget { keys, reply } => done(reply, Ok(store.mget(&keys, now))),
            Command::Expire { key, ttl, reply } => decided(reply, store.expire(&key, ttl, now)),
            Command::PurgeExpired { limit, reply } => {
                done(reply, Ok(store.purge_expired(limit, now)))
            }
            Command::Stats { reply } => {
                self.feeds.recount(store);
                done(reply, Ok(store.stats()))
            }
            Command::Shutdown { reply } => {
                self.shutdown = Some(reply);
                OK
            }
            Command::Incr {
                key,
                by,
                ttl,
                reply,
            } => done(reply, store.incr(key, by, ttl, now)),
            Command::SetIfAbsent {
                key,
                value,
                ttl,
                reply,
            } => decided_or_failed(reply, store.set_if_absent(key, value, ttl, now)),
            Command::CompareAndSet {
                key,
                expected,
                new,
                ttl,
                reply,
            } => decided_or_failed(reply, store.compare_and_set(key, expected, new, ttl, now)),
            Command::Update { key, f, reply } => done(reply, store.update(key, f, now)),
            Command::Transaction { prefix, f, reply } => {
                done(reply, store.transaction(&prefix, f, now))
            }
            Command::GetDel { key, reply } => found(reply, store.get_del(&key, now)),
            Command::Exists { key, reply } => {
                let live = store.exists(&key, now);
                let _ = reply.send(Ok(live));
                if live {
                    "hit"
                } else {
                    "miss"
                }
            }
            Command::Ttl { key, reply } => done(reply, Ok(store.ttl(&key, now))),
            Command::Persist { key, reply } => decided(reply, store.persist(&key, now)),
            Command::ScanPrefix {
                prefix,
                limit,
                reply,
            } => done(reply, Ok(store.scan_prefix(&prefix, limit, now))),
            Command::Watch {
                prefix,
                capacity,
                reply,
            } => {
                let capacity = capacity.clamp(1, MAX_FEED_CAPACITY);
                done(reply, Ok(self.feeds.subscribe(prefix, capacity)))
            }
            Command::WaitFor { key, reply } => match store.get(&key, now) {
                Some(value) => done(reply, Ok(value)),
                None => {
                    self.feeds.wait(key, reply);
                    "waiting"
                }
            },
        };
        self.feeds.publish(&mut self.store);
        outcome
    }
}

/// What came of a command that did what it was asked.
const OK: &str = "ok";

// The answers. `let _ =` on every send: the caller may have dropped its future; the command is
// applied regardless.

/// Answers with a result; what came of it is `ok` or the error's kind. A closure that panicked is
/// also worth a warning: the caller may not look at the error, and the panic was caught here.
fn done<T>(reply: Reply<T>, result: Result<T, KvError>) -> &'static str {
    let outcome = match &result {
        Ok(_) => OK,
        Err(error @ (KvError::UpdatePanicked { .. } | KvError::TransactionPanicked { .. })) => {
            tracing::warn!(%error, "caught a panic in a closure; the store is unchanged");
            error.kind()
        }
        Err(error) => error.kind(),
    };
    let _ = reply.send(result);
    outcome
}

/// Answers with what a lookup found: `hit` or `miss`.
fn found<T>(reply: Reply<Option<T>>, value: Option<T>) -> &'static str {
    let outcome = if value.is_some() { "hit" } else { "miss" };
    let _ = reply.send(Ok(value));
    outcome
}

/// Answers with whether a conditional call applied, or why it failed (a full bounded store).
fn decided_or_failed(reply: Reply<bool>, result: Result<bool, KvError>) -> &'static str {
    match result {
        Ok(applied) => decided(reply, applied),
        Err(error) => done(reply, Err(error)),
    }
}

/// Answers with whether a conditional call applied: `applied` or `refused`.
fn decided(reply: Reply<bool>, applied: bool) -> &'static str {
    let _ = reply.send(Ok(applied));
    if applied {
        "applied"
    } else {
        "refused"
    }
}
