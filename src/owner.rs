//! The owner task: the one task that holds the [`Store`].
//!
//! Its loop: take a batch of commands from the mailbox, apply each one whole, answer it, and between
//! batches remove a bounded slice of expired entries (active expiry). Because only this task touches
//! the store, every command is atomic and all commands are applied in one order, with no lock.
//!
//! It stops when every [`KvHandle`](crate::KvHandle) is gone (the mailbox closes) or on
//! [`Command::Shutdown`], after answering everything that was queued before it.

use std::pin::pin;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use crate::command::{Command, Reply};
use crate::store::Store;
use crate::watchers::Watchers;

/// How many commands the owner takes from the mailbox at once. Draining in batches saves a trip
/// through the channel's wake-up machinery per command when many callers are busy.
const BATCH: usize = 64;

/// How many expired entries active expiry removes between two batches of commands, so that a mass
/// expiry never holds up callers for long.
const EXPIRY_SLICE: usize = 256;

/// Settings the owner task runs with, from [`KvBuilder`](crate::KvBuilder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnerConfig {
    /// Remove expired entries soon after their deadline, not only when touched or purged.
    pub(crate) active_expiry: bool,
}

/// Runs the owner task until the mailbox closes or a shutdown command arrives.
pub(crate) async fn run(mut mailbox: mpsc::Receiver<Command>, config: OwnerConfig) {
    tracing::debug!(
        active_expiry = config.active_expiry,
        "ephemeral-kv owner task started"
    );
    let mut store = Store::default();
    let mut watchers = Watchers::default();
    let mut batch = Vec::with_capacity(BATCH);
    // One timer, re-armed only when the earliest deadline changes, wakes the task for active
    // expiry while no commands arrive.
    let mut timer = pin!(sleep_until(Instant::now()));
    let mut armed_for = None;
    let mut shutdown: Option<Reply<()>> = None;

    loop {
        let next_deadline = config
            .active_expiry
            .then(|| store.next_deadline())
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
                for command in batch.drain(..) {
                    command.trace();
                    if let Command::Shutdown { reply } = command {
                        shutdown = Some(reply);
                        break;
                    }
                    watchers.apply(command, &mut store, Instant::now());
                }
                if shutdown.is_some() {
                    // Commands queued after the shutdown are dropped unanswered: their callers get
                    // `KvError::Closed`, as does every later call.
                    mailbox.close();
                    break;
                }
            }
            () = &mut timer, if next_deadline.is_some() => {}
        }

        if config.active_expiry {
            store.purge_expired(EXPIRY_SLICE, Instant::now());
            watchers.publish(&mut store);
        }
    }

    drop(mailbox);
    drop(store);
    tracing::debug!("ephemeral-kv owner task stopped");
    if let Some(reply) = shutdown {
        let _ = reply.send(Ok(()));
    }
}
