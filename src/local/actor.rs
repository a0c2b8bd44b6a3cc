//! The owner task: the one task that holds the [`Store`], as an actor.
//!
//! Its loop: take a batch of commands from the mailbox, [`handle`](Owner::handle) each one whole,
//! and between batches remove a bounded slice of expired entries (active expiry). Because only
//! this task touches the store, every command is atomic and all commands are applied in one order,
//! with no lock.
//!
//! It stops when every [`KvHandle`](crate::KvHandle) is gone (the mailbox closes) or on
//! a `Shutdown` command, after answering everything that was queued before it.

use std::pin::pin;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::feeds::Feeds;
use super::store::Store;
use super::Config;
#[cfg(feature = "durable")]
use crate::command::Polled;
use crate::command::{
    refuse_the_rest, Call, Command, CompareAndSet, Expire, Incr, ListAppendUnique, ListPopFront,
    ListPush, Message, Mset, Op, Reply, ScanPrefix, Set, SetIfAbsent, Transaction, Update, Watch,
};
use crate::error::KvError;

/// How many commands the owner takes from the mailbox at once. Draining in batches saves a trip
/// through the channel's wake-up machinery per command when many callers are busy.
const BATCH: usize = 64;

/// How many expired entries active expiry removes between two batches of commands, so that a mass
/// expiry never holds up callers for long.
const EXPIRY_SLICE: usize = 256;

/// The owner task's state: the store, its change feeds and waiters, and a shutdown in progress.
pub(crate) struct Owner {
    config: Config,
    store: Store,
    feeds: Feeds,
    /// Set by a `Shutdown` command: answered once the task has stopped.
    shutdown: Option<Reply<()>>,
    /// A durable store's journal: where each batch's changes go.
    #[cfg(feature = "durable")]
    journal: Option<super::journal::Journal>,
}

impl Owner {
    pub(crate) fn new(config: Config) -> Owner {
        Owner {
            config,
            store: Store::new(config.store, config.bound, config.capacity),
            feeds: Feeds::default(),
            shutdown: None,
            #[cfg(feature = "durable")]
            journal: None,
        }
    }

    /// A durable store's owner: the store starts with `loaded` and journals its changes.
    #[cfg(feature = "durable")]
    pub(crate) fn durable(
        config: Config,
        journal: super::journal::Journal,
        loaded: Vec<(String, serde_json::Value, Option<Instant>)>,
    ) -> Owner {
        let mut owner = Owner::new(config);
        for (key, value, deadline) in loaded {
            owner.store.load(key, value, deadline);
        }
        owner.store.start_journal();
        owner.journal = Some(journal);
        owner
    }

    /// After a batch: hands the journal the changes so far if it is ready for them.
    ///
    /// Returns whether the owner is to yield and take another turn before it waits: it has just
    /// answered writers, whose next writes are to join the next hand-off.
    #[cfg(feature = "durable")]
    fn journal_batch(&mut self, now: Instant, full: bool) -> bool {
        match &mut self.journal {
            Some(journal) => journal.flush(&mut self.store, now, full),
            None => false,
        }
    }

    /// Whether so many changes wait for a busy journal thread that the owner takes no command
    /// until it is ready (`journal::BACKLOG`).
    fn held_back(&self) -> bool {
        #[cfg(feature = "durable")]
        if let Some(journal) = &self.journal {
            return journal.backlogged(self.store.marks());
        }
        false
    }

    /// Runs the owner task until the mailbox closes or a shutdown command arrives.
    pub(crate) async fn run(mut self, mut mailbox: mpsc::Receiver<Message>) {
        tracing::info!(
            active_expiry = self.config.active_expiry,
            mailbox_capacity = self.config.mailbox_capacity,
            max_entries = self.config.bound.map(|bound| bound.max_entries),
            eviction = self
                .config
                .bound
                .map(|bound| tracing::field::debug(bound.eviction)),
            "ephemeral-kv owner task started"
        );
        let mut batch = Vec::with_capacity(BATCH);
        // One timer, re-armed only when the earliest deadline changes, wakes the task for active
        // expiry and for waiting pops whose time is up while no commands arrive.
        let mut timer = pin!(sleep_until(Instant::now()));
        let mut armed_for = None;
        // A durable store's owner also wakes when the journal thread is ready for its changes.
        #[cfg(feature = "durable")]
        let journal_ready = self.journal.as_ref().map(super::journal::Journal::wake);
        #[cfg(not(feature = "durable"))]
        let journal_ready: Option<std::sync::Arc<tokio::sync::Notify>> = None;

        // Set when the owner is to take another turn at once, after yielding to the callers it
        // has just answered (a durable store's group commit, `Journal::flush`).
        #[cfg_attr(not(feature = "durable"), allow(unused_mut))]
        let mut again = false;
        loop {
            let expiry = self
                .config
                .active_expiry
                .then(|| self.store.next_deadline())
                .flatten();
            let next_deadline = match (expiry, self.feeds.next_pop_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(deadline) = next_deadline {
                if armed_for != Some(deadline) {
                    timer.as_mut().reset(deadline);
                    armed_for = Some(deadline);
                }
            }

            if again {
                tokio::task::yield_now().await;
            }
            let held_back = self.held_back();
            // The instant the last command of this turn was handled at, if the turn handled any:
            // the housekeeping after it reads the clock again only when nothing was handled.
            let mut handled_at = None;
            // Whether this turn took a full batch from the mailbox: more commands may be waiting.
            #[cfg(feature = "durable")]
            let mut full = false;
            tokio::select! {
                // Commands first: expiry is housekeeping and may wait for the next turn.
                biased;
                received = mailbox.recv_many(&mut batch, BATCH), if !held_back => {
                    if received == 0 {
                        break; // every handle is gone
                    }
                    #[cfg(feature = "durable")]
                    {
                        full = received == BATCH;
                        if let Some(journal) = &mut self.journal {
                            journal.poll_parked();
                        }
                    }
                    for message in batch.drain(..) {
                        handled_at = Some(self.receive(message));
                        if self.shutdown.is_some() {
                            tracing::info!("ephemeral-kv owner task shutting down");
                            break;
                        }
                    }
                    if self.shutdown.is_some() {
                        // Commands queued after the shutdown are dropped unanswered: their callers
                        // get `KvError::Closed`, as does every later call.
                        refuse_the_rest(&mut mailbox).await;
                        break;
                    }
                }
                () = &mut timer, if next_deadline.is_some() => {}
                () = ready(journal_ready.as_deref()), if journal_ready.is_some() => {}
                () = std::future::ready(()), if again => {}
            }

            let now = handled_at.unwrap_or_else(Instant::now);
            self.feeds.time_out_pops(now);
            if self.config.active_expiry {
                let expired = self.store.purge_expired(EXPIRY_SLICE, now);
                if expired > 0 {
                    tracing::debug!(expired, "active expiry removed expired entries");
                }
            }
            self.feeds.publish(&mut self.store, now);
            #[cfg(feature = "durable")]
            {
                again = self.journal_batch(now, full);
            }
        }

        drop(mailbox);
        #[cfg(feature = "durable")]
        {
            // The last changes (the shutdown's batch) are committed and the file closed before
            // the shutdown is answered, so that it can be opened again at once.
            if let Some(journal) = self.journal.take() {
                journal.close(&mut self.store, Instant::now()).await;
            }
        }
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
    ///
    /// Returns the instant it was handled at: each command reads the clock as it is handled.
    fn receive(&mut self, Message { command, span }: Message) -> Instant {
        let span = span.into_span();
        let _in_callers_span = span.enter();
        let now = Instant::now();
        #[cfg(feature = "durable")]
        let command = match self.journaled(command, now) {
            Some(command) => command,
            None => return now,
        };
        self.logged(command, now);
        now
    }

    /// A durable store's part of receiving a command: refuses it after a failed commit; under
    /// `EveryBatch`, handles it with its answer held until the batch is committed if it changed
    /// anything. Returns the command if it is still to be handled as in any store.
    #[cfg(feature = "durable")]
    fn journaled(&mut self, command: Command, now: Instant) -> Option<Command> {
        let Some(journal) = &self.journal else {
            return Some(command);
        };
        if matches!(command, Command::Shutdown(_)) {
            return Some(command);
        }
        if let Some(error) = journal.failed() {
            command.fail(error);
            return None;
        }
        if !journal.every_batch() {
            return Some(command);
        }
        // A command that writes nothing is answered as it is handled.
        let (command, relay) = command.detach_reply();
        let Some(mut relay) = relay else {
            return Some(command);
        };
        let before = self.store.marks();
        self.logged(command, now);
        let changed = self.store.marks() != before;
        let Some(journal) = &mut self.journal else {
            return None;
        };
        match relay.poll() {
            Polled::Answered(answer) if changed => journal.hold(answer),
            Polled::Answered(answer) => answer(None),
            // A waiting pop: its answer is held for the commit of the batch that serves it.
            Polled::Parked => journal.park(relay),
            Polled::Gone => {}
        }
        None
    }

    /// Handles one command, logging what came of it at debug level.
    fn logged(&mut self, command: Command, now: Instant) {
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
            Command::Get(call) => {
                let value = store.get(&call.args.key, now);
                found(call, value)
            }
            Command::Set(call) => {
                let Set { key, value, ttl } = call.args;
                done(call.reply, store.set(key, value, ttl, now))
            }
            Command::Delete(call) => {
                store.delete(&call.args.key, now);
                done(call.reply, Ok(()))
            }
            Command::ListAppendUnique(call) => {
                let ListAppendUnique {
                    key,
                    items,
                    id_key,
                    ttl,
                } = call.args;
                let list = store.list_append_unique(key, items, &id_key, ttl, now);
                done(call.reply, list)
            }
            Command::ListPopAll(call) => {
                let list = store.list_pop_all(&call.args.key, now);
                found(call, list)
            }
            Command::ListPush(call) => {
                let ListPush {
                    key,
                    items,
                    max_len,
                    ttl,
                } = call.args;
                done(call.reply, store.list_push(key, items, max_len, ttl, now))
            }
            Command::ListPopFront(call) => {
                let ListPopFront { key, count, wait } = &call.args;
                match (store.list_pop_front(key, *count, now), wait) {
                    // Nothing to take, and the caller will wait: parked until a push or the
                    // deadline (a timeout too large for an instant never ends).
                    (Ok(items), Some(wait)) if items.is_empty() => {
                        let deadline = now.checked_add(*wait);
                        let ListPopFront { key, count, .. } = call.args;
                        self.feeds.wait_to_pop(key, count, deadline, call.reply);
                        "waiting"
                    }
                    (items, _) => done(call.reply, items),
                }
            }
            Command::Mset(call) => {
                let Mset { entries, ttl } = call.args;
                done(call.reply, store.mset(entries, ttl, now))
            }
            Command::Mget(call) => {
                let values = store.mget(&call.args.keys, now);
                done(call.reply, Ok(values))
            }
            Command::Expire(call) => {
                let Expire { key, ttl } = &call.args;
                let applied = store.expire(key, *ttl, now);
                decided(call.reply, applied)
            }
            Command::PurgeExpired(call) => {
                let removed = store.purge_expired(call.args.limit, now);
                done(call.reply, Ok(removed))
            }
            Command::Stats(call) => {
                self.feeds.recount(store);
                done(call.reply, Ok(store.stats()))
            }
            Command::Shutdown(call) => {
                self.shutdown = Some(call.reply);
                OK
            }
            Command::Incr(call) => {
                let Incr { key, by, ttl } = call.args;
                done(call.reply, store.incr(key, by, ttl, now))
            }
            Command::SetIfAbsent(call) => {
                let SetIfAbsent { key, value, ttl } = call.args;
                decided_or_failed(call.reply, store.set_if_absent(key, value, ttl, now))
            }
            Command::CompareAndSet(call) => {
                let CompareAndSet {
                    key,
                    expected,
                    new,
                    ttl,
                } = call.args;
                let swapped = store.compare_and_set(key, expected, new, ttl, now);
                decided_or_failed(call.reply, swapped)
            }
            Command::Update(call) => {
                let Update { key, f } = call.args;
                done(call.reply, store.update(key, f, now))
            }
            Command::Transaction(call) => {
                let Transaction { prefix, f } = call.args;
                done(call.reply, store.transaction(&prefix, f, now))
            }
            Command::GetDel(call) => {
                let value = store.get_del(&call.args.key, now);
                found(call, value)
            }
            Command::Exists(call) => {
                let live = store.exists(&call.args.key, now);
                call.answer(Ok(live));
                if live {
                    "hit"
                } else {
                    "miss"
                }
            }
            Command::Ttl(call) => {
                let ttl = store.ttl(&call.args.key, now);
                done(call.reply, Ok(ttl))
            }
            Command::Persist(call) => {
                let applied = store.persist(&call.args.key, now);
                decided(call.reply, applied)
            }
            Command::ScanPrefix(call) => {
                let ScanPrefix { prefix, limit } = &call.args;
                let keys = store.scan_prefix(prefix, *limit, now);
                done(call.reply, Ok(keys))
            }
            Command::Watch(call) => {
                let Watch { prefix, capacity } = call.args;
                done(call.reply, Ok(self.feeds.subscribe(prefix, capacity)))
            }
            Command::WaitFor(call) => match store.get(&call.args.key, now) {
                Some(value) => done(call.reply, Ok(value)),
                None => {
                    self.feeds.wait(call.args.key, call.reply);
                    "waiting"
                }
            },
        };
        self.feeds.publish(&mut self.store, now);
        outcome
    }
}

/// Resolves when `wake` (a durable store's journal thread) is notified; never without one.
async fn ready(wake: Option<&tokio::sync::Notify>) {
    match wake {
        Some(wake) => wake.notified().await,
        None => std::future::pending().await,
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
fn found<C, T>(call: Call<C>, value: Option<T>) -> &'static str
where
    C: Op<Answer = Option<T>>,
{
    let outcome = if value.is_some() { "hit" } else { "miss" };
    call.answer(Ok(value));
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
