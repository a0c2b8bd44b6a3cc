//! The typed reads: `get_as` and `wait_for_as`, a [`Get`](command::Get) or a
//! [`WaitFor`](command::WaitFor) whose answer is deserialized on the caller's task.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::pending::Request;
use crate::command;
use crate::error::KvError;
use crate::mailbox::Mailbox;
use crate::value::decode;

/// [`KvHandle::get_as`](crate::KvHandle::get_as): a `get` read as a `T`.
pub(crate) struct GetAs<T>(command::Get, PhantomData<fn() -> T>);

impl<T> GetAs<T> {
    pub(crate) fn new(key: String) -> Self {
        GetAs(command::Get { key }, PhantomData)
    }
}

impl<T> fmt::Debug for GetAs<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GetAs").field(&self.0).finish()
    }
}

impl<T: DeserializeOwned> Request for GetAs<T> {
    type Op = command::Get;
    type Output = Option<T>;
    /// The key, for the error if the value does not fit `T`.
    type Shape = String;

    fn command(self) -> Result<(command::Get, String), KvError> {
        let key = self.0.key.clone();
        Ok((self.0, key))
    }

    fn output(key: String, value: Option<Arc<Value>>, _: &Mailbox) -> Result<Option<T>, KvError> {
        value.map(|value| decode(&key, &value)).transpose()
    }
}

/// [`KvHandle::wait_for_as`](crate::KvHandle::wait_for_as): a `wait_for` read as a `T`.
pub(crate) struct WaitForAs<T>(command::WaitFor, PhantomData<fn() -> T>);

impl<T> WaitForAs<T> {
    pub(crate) fn new(key: String) -> Self {
        WaitForAs(command::WaitFor { key }, PhantomData)
    }
}

impl<T> fmt::Debug for WaitForAs<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WaitForAs").field(&self.0).finish()
    }
}

impl<T: DeserializeOwned> Request for WaitForAs<T> {
    type Op = command::WaitFor;
    type Output = T;
    /// The key, for the error if the value does not fit `T`.
    type Shape = String;

    fn command(self) -> Result<(command::WaitFor, String), KvError> {
        let key = self.0.key.clone();
        Ok((self.0, key))
    }

    fn output(key: String, value: Arc<Value>, _: &Mailbox) -> Result<T, KvError> {
        decode(&key, &value)
    }
}
