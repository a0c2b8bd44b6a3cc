//! The commands about the store as a whole: [`PurgeExpired`], [`Stats`] and [`Shutdown`].

use super::{Op, Subject};
use crate::stats;

/// Remove up to `limit` expired entries; answer how many went.
#[derive(Debug)]
pub struct PurgeExpired {
    pub(crate) limit: usize,
}

impl Op for PurgeExpired {
    const NAME: &'static str = "purge_expired";
    const WRITES: bool = false;
    type Answer = usize;
    fn subject(&self) -> Subject {
        Subject::Limit(self.limit)
    }
}

/// Count what the store holds.
#[derive(Debug)]
pub struct Stats;

impl Op for Stats {
    const NAME: &'static str = "stats";
    const WRITES: bool = false;
    type Answer = stats::Stats;
    fn subject(&self) -> Subject {
        Subject::Store
    }
}

/// Answer everything queued before this, then stop.
#[derive(Debug)]
pub struct Shutdown;

impl Op for Shutdown {
    const NAME: &'static str = "shutdown";
    const WRITES: bool = false;
    type Answer = ();
    fn subject(&self) -> Subject {
        Subject::Store
    }
}
