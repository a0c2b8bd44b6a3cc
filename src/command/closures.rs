//! The commands that carry a caller's closure: [`Update`] and [`Transaction`], and the boxed
//! closures themselves.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::{Op, Subject};
use crate::closure;
use crate::txn::Txn;

/// Replace a key's value with what a closure makes of it; answer with the new value.
#[derive(Debug)]
pub struct Update {
    pub(crate) key: String,
    pub(crate) f: UpdateFn,
}

impl Op for Update {
    const NAME: &'static str = "update";
    const WRITES: bool = true;
    type Answer = Option<Arc<Value>>;
    fn subject(&self) -> Subject {
        Subject::key(&self.key)
    }
}

/// Run a closure over several keys under `prefix`; apply all of its writes or none.
#[derive(Debug)]
pub struct Transaction {
    pub(crate) prefix: String,
    pub(crate) f: TxnFn,
}

impl Op for Transaction {
    const NAME: &'static str = "transaction";
    const WRITES: bool = true;
    type Answer = ();
    fn subject(&self) -> Subject {
        Subject::prefix(&self.prefix)
    }
}

/// An `update` closure: the key's current value in, its new value (or `None`: delete) out.
///
/// `FnMut`, not `FnOnce`: the Redis executor runs it again when another client wrote the key
/// between its read and its write. In-process it runs exactly once.
///
/// Dropping it catches a panic from what the closure captured ([`closure::drop_quietly`]),
/// wherever the command is dropped: after it ran, or unanswered in a mailbox that is closing.
pub struct UpdateFn(Box<UpdateClosure>);

/// What an [`UpdateFn`] boxes.
type UpdateClosure = dyn FnMut(Option<&Value>) -> Option<Value> + Send;

impl UpdateFn {
    pub(crate) fn new(f: impl FnMut(Option<&Value>) -> Option<Value> + Send + 'static) -> Self {
        UpdateFn(Box::new(f))
    }

    /// Runs the closure on the key's current value.
    pub(crate) fn call(&mut self, current: Option<&Value>) -> Option<Value> {
        (self.0)(current)
    }
}

impl fmt::Debug for UpdateFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpdateFn")
    }
}

impl Drop for UpdateFn {
    fn drop(&mut self) {
        closure::drop_quietly(std::mem::replace(&mut self.0, Box::new(|_| None)));
    }
}

/// A `transaction` closure, reading and staging writes through a [`Txn`]. `FnMut`, and dropped
/// quietly, for the same reasons as [`UpdateFn`].
pub struct TxnFn(Box<dyn FnMut(&mut Txn<'_>) + Send>);

impl TxnFn {
    pub(crate) fn new(f: impl FnMut(&mut Txn<'_>) + Send + 'static) -> Self {
        TxnFn(Box::new(f))
    }

    /// Runs the closure on a transaction.
    pub(crate) fn call(&mut self, txn: &mut Txn<'_>) {
        (self.0)(txn)
    }
}

impl fmt::Debug for TxnFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TxnFn")
    }
}

impl Drop for TxnFn {
    fn drop(&mut self) {
        closure::drop_quietly(std::mem::replace(&mut self.0, Box::new(|_| {})));
    }
}
