//! Lazy free: big values that leave the store are dropped on a thread of their own, not on the
//! owner task.
//!
//! Freeing a `serde_json::Value` walks every node it holds: a list of a million small objects
//! takes a few hundred milliseconds to drop, and a million-key map as long. On the owner task
//! every caller would wait that long, for housekeeping no caller asked for. So, as Redis's
//! `lazyfree` does, a value that leaves the store (deleted, written over, popped, expired,
//! evicted) and is big goes to one process-wide thread that drops what it is sent, in order; and
//! so does the whole map when the owner task ends. A small value is dropped where it is: sending
//! it would cost more than freeing it.
//!
//! Sending never waits: the channel is `std::sync::mpsc`'s unbounded one, so the owner only pays
//! for putting a box on a queue. The queue can only grow as fast as the owner lets go of values,
//! each of which it would otherwise have spent the time freeing itself. If the thread cannot be
//! started, values are dropped inline, as before.
//!
//! "Big" is a cheap estimate, never a walk: the number of items of a list or fields of an object
//! at its top level (a list of a few huge lists is not caught; a list of many small objects, the
//! store's common big value, is). A value some reader still shares is dropped inline too: dropping
//! our reference only decrements a count, and the last holder frees it on its own thread.

use std::cell::Cell;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// From this many top-level items or fields on, a value is freed off the owner task (Redis uses
/// the same threshold, `LAZYFREE_THRESHOLD`): below it, freeing costs about what sending does.
pub(super) const BIG: usize = 64;

/// What the freeing thread is sent: a job that frees one chunk each time it is called and says
/// whether anything is left.
type Garbage = Box<dyn FnMut() -> bool + Send>;

/// Items freed between two yields of the freeing thread.
const CHUNK: usize = 1024;

thread_local! {
    /// How many things this thread has sent to be freed, for tests.
    #[cfg(test)]
    pub(super) static SENT: Cell<usize> = const { Cell::new(0) };
    /// Set on the freeing thread, where everything is dropped inline: a map it frees holds entries
    /// that would otherwise be sent back to it.
    static FREEING: Cell<bool> = const { Cell::new(false) };
}

/// The sender to the freeing thread, started at the first big value; `None` if it could not be.
fn freer() -> Option<&'static Sender<Garbage>> {
    static FREER: OnceLock<Option<Sender<Garbage>>> = OnceLock::new();
    FREER
        .get_or_init(|| {
            let (sender, garbage) = mpsc::channel::<Garbage>();
            std::thread::Builder::new()
                .name("ephemeral-kv-free".into())
                .spawn(move || {
                    FREEING.with(|freeing| freeing.set(true));
                    for mut job in garbage {
                        // On a machine with few cores this thread competes with the runtime's
                        // workers: let them in between chunks.
                        while job() {
                            std::thread::yield_now();
                        }
                    }
                })
                .ok()
                .map(|_| sender)
        })
        .as_ref()
}

/// Drops `garbage` on the freeing thread (inline when already there, or if there is none).
pub(super) fn free_later<T: Send + 'static>(garbage: T) {
    let mut garbage = Some(garbage);
    send(Box::new(move || {
        drop(garbage.take());
        false
    }));
}

/// Drops the items of `items` on the freeing thread, [`CHUNK`] at a time.
pub(super) fn free_items<I>(items: I)
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
{
    let mut items = items.into_iter();
    send(Box::new(move || (&mut items).take(CHUNK).count() == CHUNK));
}

/// Drops a value we hold alone on the freeing thread, a chunk of its items at a time.
fn free_value(value: Arc<Value>) {
    match Arc::try_unwrap(value) {
        Ok(Value::Array(items)) => free_items(items),
        Ok(Value::Object(fields)) => free_items(fields),
        Ok(other) => free_later(other),
        // Shared after all: dropping our reference costs a count.
        Err(shared) => drop(shared),
    }
}

fn send(job: Garbage) {
    if FREEING.with(Cell::get) {
        let mut job = job;
        while job() {}
        return;
    }
    #[cfg(test)]
    SENT.with(|sent| sent.set(sent.get() + 1));
    match freer() {
        // Fails only if the thread is gone, and then hands the job back.
        Some(freer) => {
            if let Err(mpsc::SendError(mut job)) = freer.send(job) {
                while job() {}
            }
        }
        None => {
            let mut job = job;
            while job() {}
        }
    }
}

/// The top-level size of `value`: what [`BIG`] is compared with.
pub(super) fn weight(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.len(),
        Value::Object(fields) => fields.len(),
        _ => 0,
    }
}

/// Whether dropping our reference to `value` would free a big value on this thread.
pub(super) fn is_big(value: &Arc<Value>) -> bool {
    weight(value) >= BIG && Arc::strong_count(value) == 1
}

/// Drops `value`: on the freeing thread if it is big and ours alone, inline otherwise.
pub(super) fn release(value: Arc<Value>) {
    if is_big(&value) {
        free_value(value);
    }
}

/// Waits until the freeing thread has dropped everything sent to it before this call.
#[cfg(test)]
pub(super) fn flush() {
    /// Says so when dropped, which the thread does in the order things were sent.
    struct Ack(mpsc::SyncSender<()>);
    impl Drop for Ack {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let (ack, acked) = mpsc::sync_channel(1);
    free_later(Ack(ack));
    SENT.with(|sent| sent.set(sent.get() - 1)); // not a value the store let go of
    acked.recv().expect("the freeing thread acknowledges");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_big_value_is_dropped_on_the_freeing_thread_and_a_small_one_inline() {
        let big = Arc::new(Value::Array((0..BIG).map(|i| json!(i)).collect()));
        let watch = Arc::downgrade(&big);
        release(big);
        flush();
        assert!(watch.upgrade().is_none());

        let small = Arc::new(json!([1, 2, 3]));
        let watch = Arc::downgrade(&small);
        release(small);
        assert!(watch.upgrade().is_none(), "dropped at once, inline");
    }

    #[test]
    fn a_shared_value_is_not_sent() {
        let big = Arc::new(Value::Array((0..BIG).map(|i| json!(i)).collect()));
        let reader = Arc::clone(&big);
        assert!(!is_big(&big));
        release(big);
        assert_eq!(Arc::strong_count(&reader), 1);
    }
}
