//! The calls about the store as a whole that need shaping on the caller's side: `stats` and
//! `shutdown`.

use super::pending::Request;
use crate::command;
use crate::error::KvError;
use crate::mailbox::Mailbox;
use crate::stats::Stats;

/// [`KvHandle::stats`](crate::KvHandle::stats): the store's counts, with the mailbox's depth as
/// the call joined the queue.
#[derive(Debug)]
pub(crate) struct StatsArgs {
    /// The mailbox is the channel's business, not the store's: measured on the caller's side.
    pub(crate) mailbox_depth: usize,
}

impl Request for StatsArgs {
    type Op = command::Stats;
    type Output = Stats;
    type Shape = usize;

    fn command(self) -> Result<(command::Stats, usize), KvError> {
        Ok((command::Stats, self.mailbox_depth))
    }

    fn output(mailbox_depth: usize, mut stats: Stats, _: &Mailbox) -> Result<Stats, KvError> {
        stats.mailbox_depth = mailbox_depth;
        Ok(stats)
    }
}

/// [`KvHandle::shutdown`](crate::KvHandle::shutdown).
#[derive(Debug)]
pub(crate) struct ShutdownArgs;

impl Request for ShutdownArgs {
    type Op = command::Shutdown;
    type Output = ();
    type Shape = ();

    fn command(self) -> Result<(command::Shutdown, ()), KvError> {
        Ok((command::Shutdown, ()))
    }

    fn output((): (), (): (), _: &Mailbox) -> Result<(), KvError> {
        Ok(())
    }
}
