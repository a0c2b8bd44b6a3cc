//! [`KvHandle::transaction`](crate::KvHandle::transaction): a [`Transaction`](command::Transaction)
//! whose closure's result comes back through a slot it writes.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::pending::Request;
use crate::command::{self, TxnFn};
use crate::error::KvError;
use crate::mailbox::Mailbox;
use crate::txn::Txn;

/// The command, and the slot its closure leaves its result in.
pub(crate) struct TransactionArgs<R> {
    command: command::Transaction,
    slot: Arc<Mutex<Option<R>>>,
}

impl<R: Send + 'static> TransactionArgs<R> {
    pub(crate) fn new<F>(prefix: String, mut f: F) -> Self
    where
        F: FnMut(&mut Txn<'_>) -> R + Send + 'static,
    {
        // Each run overwrites the slot; the executor stops running `f` once a run's writes are
        // applied, so what is left in it is the committed run's value.
        let slot = Arc::new(Mutex::new(None));
        let writer = Arc::clone(&slot);
        let f = TxnFn::new(move |txn: &mut Txn<'_>| {
            let result = f(txn);
            *writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        });
        TransactionArgs {
            command: command::Transaction { prefix, f },
            slot,
        }
    }
}

impl<R> fmt::Debug for TransactionArgs<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TransactionArgs")
            .field(&self.command)
            .finish()
    }
}

impl<R: Send> Request for TransactionArgs<R> {
    type Op = command::Transaction;
    type Output = R;
    type Shape = Arc<Mutex<Option<R>>>;

    fn command(self) -> Result<(command::Transaction, Self::Shape), KvError> {
        Ok((self.command, self.slot))
    }

    fn output(slot: Self::Shape, (): (), mailbox: &Mailbox) -> Result<R, KvError> {
        let result = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        result.ok_or_else(|| mailbox.closed())
    }
}
