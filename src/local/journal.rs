//! The journal of a durable store (feature `durable`): the SQLite file every change is committed
//! to, and the thread that commits.
//!
//! The owner task never touches the disk. After each batch it hands the journal thread, over an
//! unbounded channel it never waits on, the final state of every key the batch changed (the
//! stored `Arc<Value>` and a wall-clock deadline, or "gone"), and under
//! [`Durability::EveryBatch`] the answers of the commands that changed something. The thread
//! serializes the values, writes a group of batches in one SQLite transaction, commits (synced),
//! and only then sends the held answers. A batch is always whole in one transaction, so no command
//! (a `transaction`, an `mset`) is ever half on disk.
//!
//! The file (`docs/durability.md`): one table `kv (key, value, expires_at_ms)`, WAL mode,
//! `synchronous=FULL`, `locking_mode=EXCLUSIVE` (one store at a time, across processes), marked
//! as this crate's with `PRAGMA application_id` and versioned with `user_version`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::durability::Durability;
use crate::error::{DurableErrorKind, KvError};
use crate::local::store::Journaled;

/// `PRAGMA application_id` of this crate's files: "EKV1".
pub(crate) const APPLICATION_ID: i32 = 0x454B_5631;

/// The file format this version writes and reads (`PRAGMA user_version`).
pub(crate) const FORMAT: i32 = 1;

/// A key read from the file: its value and what was left of its TTL when it was read.
pub(crate) type Loaded = (String, Value, Option<Duration>);

/// One key's change as the journal thread writes it: the value and its deadline in ms since the
/// epoch, or `None`: the key is gone.
type Row = (String, Option<(Arc<Value>, Option<i64>)>);

/// An answer held until its commit: given the commit's error if it failed.
type Ack = Box<dyn FnOnce(Option<KvError>) + Send>;

/// What the owner sends the journal thread.
enum ToJournal {
    /// One batch's changes (a key's value and deadline in ms since the epoch, or `None`: gone),
    /// and the answers to send once they are committed.
    Batch { changes: Vec<Row>, acks: Vec<Ack> },
    /// Commit what is queued, close the file, then answer.
    Close(oneshot::Sender<()>),
}

/// The owner task's side of the journal.
pub(crate) struct Journal {
    sender: mpsc::Sender<ToJournal>,
    /// Set by the journal thread when a commit fails; from then on every call is refused.
    failure: Arc<OnceLock<KvError>>,
    every_batch: bool,
    /// Answers held for the batch being handled.
    acks: Vec<Ack>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("every_batch", &self.every_batch)
            .field("held", &self.acks.len())
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Whether a write is answered only after its commit.
    pub(crate) fn every_batch(&self) -> bool {
        self.every_batch
    }

    /// The error every call gets once a commit has failed.
    pub(crate) fn failed(&self) -> Option<KvError> {
        self.failure.get().map(copy_error)
    }

    /// Holds an answer until the current batch is committed.
    pub(crate) fn hold(&mut self, ack: Ack) {
        self.acks.push(ack);
    }

    /// Sends the journal thread the batch's changes (their state at `now`) and held answers.
    pub(crate) fn send(&mut self, changes: Vec<Journaled>, now: Instant) {
        if changes.is_empty() && self.acks.is_empty() {
            return;
        }
        let wall = epoch_ms(SystemTime::now());
        let changes = changes
            .into_iter()
            .map(|(key, state)| {
                let state = state.map(|(value, deadline)| {
                    let at = deadline.map(|deadline| {
                        let left = deadline.saturating_duration_since(now).as_millis();
                        wall.saturating_add(i64::try_from(left).unwrap_or(i64::MAX))
                    });
                    (value, at)
                });
                (key, state)
            })
            .collect();
        let acks = std::mem::take(&mut self.acks);
        if let Err(mpsc::SendError(ToJournal::Batch { acks, .. })) =
            self.sender.send(ToJournal::Batch { changes, acks })
        {
            // The thread is gone (it only ends when told to, or by a panic): refuse the writes.
            let error = self.failed().unwrap_or_else(|| KvError::Durable {
                path: PathBuf::new(),
                kind: DurableErrorKind::Commit,
                message: "the journal thread has stopped".into(),
                source: None,
            });
            for ack in acks {
                ack(Some(copy_error(&error)));
            }
        }
    }

    /// Commits what is queued and closes the file; returns once it is closed, so that the file
    /// can be opened again at once.
    pub(crate) async fn close(self) {
        let (done, closed) = oneshot::channel();
        if self.sender.send(ToJournal::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

/// A copy of a journal error (`KvError` is not `Clone`; the source is shared).
fn copy_error(error: &KvError) -> KvError {
    match error {
        KvError::Durable {
            path,
            kind,
            message,
            source,
        } => KvError::Durable {
            path: path.clone(),
            kind: *kind,
            message: message.clone(),
            source: source.clone(),
        },
        other => KvError::Durable {
            path: PathBuf::new(),
            kind: DurableErrorKind::Commit,
            message: other.to_string(),
            source: None,
        },
    }
}

/// Milliseconds since the Unix epoch (negative before it, saturating).
fn epoch_ms(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Opens (or creates) the file at `path`, checks that it is this crate's, takes it for this
/// process, reads every live key, and starts the journal thread. Blocking: run it off the runtime.
/// A file holding more live keys than `max_entries` is refused.
pub(crate) fn open(
    path: &Path,
    durability: Durability,
    max_entries: Option<usize>,
) -> Result<(Journal, Vec<Loaded>), KvError> {
    let failed = |kind, message: &str, source: Option<rusqlite::Error>| KvError::Durable {
        path: path.to_owned(),
        kind,
        message: message.to_owned(),
        source: source.map(|error| Arc::new(error) as Arc<dyn std::error::Error + Send + Sync>),
    };
    // What a SQLite error met while opening means for the caller.
    let classify = |doing: &str, error: rusqlite::Error| {
        let kind = match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DurableErrorKind::Locked,
            Some(ErrorCode::NotADatabase) => DurableErrorKind::NotOurs,
            Some(ErrorCode::DatabaseCorrupt) => DurableErrorKind::Corrupt,
            Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
                DurableErrorKind::Open
            }
            _ => DurableErrorKind::Open,
        };
        let message = match kind {
            DurableErrorKind::Locked => "another store (in this process or another) has it open",
            DurableErrorKind::NotOurs => "not a SQLite database, so not an ephemeral-kv store",
            DurableErrorKind::Corrupt => "the file is corrupt",
            _ => doing,
        };
        failed(kind, message, Some(error))
    };

    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)
        .map_err(|e| classify("cannot open the file", e))?;
    // Refused at once rather than waited for: a second store on the file is a mistake.
    conn.busy_timeout(Duration::ZERO)
        .map_err(|e| classify("cannot configure SQLite", e))?;
    // The lock is taken by the first transaction and kept until the connection closes: one
    // store at a time, whichever process it is in.
    conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))
        .map_err(|e| classify("cannot configure SQLite", e))?;

    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(|e| classify("cannot lock the file", e))?;
    let read = |sql: &str| tx.query_row(sql, [], |row| row.get::<_, i64>(0));
    let application_id = read("PRAGMA application_id").map_err(|e| classify("cannot read", e))?;
    let version = read("PRAGMA user_version").map_err(|e| classify("cannot read", e))?;
    let objects =
        read("SELECT count(*) FROM sqlite_master").map_err(|e| classify("cannot read", e))?;
    if application_id == 0 && version == 0 && objects == 0 {
        tx.execute_batch(&format!(
            "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL, \
             expires_at_ms INTEGER) WITHOUT ROWID;
             PRAGMA application_id = {APPLICATION_ID};
             PRAGMA user_version = {FORMAT};"
        ))
        .map_err(|e| classify("cannot create the table", e))?;
    } else if application_id != i64::from(APPLICATION_ID) {
        return Err(failed(
            DurableErrorKind::NotOurs,
            "a SQLite database of another program (its application_id is not ephemeral-kv's)",
            None,
        ));
    } else if version > i64::from(FORMAT) {
        return Err(failed(
            DurableErrorKind::NewerFormat,
            &format!("written by a newer ephemeral-kv (format {version}; this one reads {FORMAT})"),
            None,
        ));
    } else if version < i64::from(FORMAT) {
        return Err(failed(
            DurableErrorKind::Corrupt,
            &format!("marked as ephemeral-kv's but with format {version}"),
            None,
        ));
    }

    let now = epoch_ms(SystemTime::now());
    // Keys that expired while no store had the file: never loaded, so dropped here.
    tx.execute(
        "DELETE FROM kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1",
        [now],
    )
    .map_err(|e| classify("cannot remove expired keys", e))?;
    let mut loaded = Vec::new();
    {
        let mut rows = tx
            .prepare("SELECT key, value, expires_at_ms FROM kv")
            .map_err(|e| classify("cannot read the table", e))?;
        let mut rows = rows
            .query([])
            .map_err(|e| classify("cannot read the table", e))?;
        while let Some(row) = rows.next().map_err(|e| classify("cannot read", e))? {
            let key: String = row.get(0).map_err(|e| corrupt(path, e))?;
            let text: String = row.get(1).map_err(|e| corrupt(path, e))?;
            let at: Option<i64> = row.get(2).map_err(|e| corrupt(path, e))?;
            let value = parse(&text).map_err(|why| KvError::Durable {
                path: path.to_owned(),
                kind: DurableErrorKind::Corrupt,
                message: format!("the value of key `{key}` is not JSON this crate stores: {why}"),
                source: None,
            })?;
            let left = at.map(|at| Duration::from_millis(at.saturating_sub(now).unsigned_abs()));
            loaded.push((key, value, left));
        }
    }
    if let Some(max_entries) = max_entries.filter(|&max| loaded.len() > max) {
        return Err(failed(
            DurableErrorKind::TooManyKeys,
            &format!(
                "the file holds {} live keys, more than max_entries ({max_entries})",
                loaded.len()
            ),
            None,
        ));
    }
    tx.commit().map_err(|e| classify("cannot commit", e))?;
    // WAL: a commit appends to the log (one sync) instead of rewriting pages in place.
    // FULL: the log is synced on every commit, so a committed write survives a power cut too.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .map_err(|e| classify("cannot switch to WAL", e))?;
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(|e| classify("cannot configure SQLite", e))?;

    let (sender, receiver) = mpsc::channel();
    let failure = Arc::new(OnceLock::new());
    let thread = Thread {
        conn,
        receiver,
        failure: Arc::clone(&failure),
        durability,
        path: path.to_owned(),
    };
    std::thread::Builder::new()
        .name("ephemeral-kv-journal".into())
        .spawn(move || thread.run())
        .map_err(|error| KvError::Durable {
            path: path.to_owned(),
            kind: DurableErrorKind::Open,
            message: "cannot start the journal thread".into(),
            source: Some(Arc::new(error)),
        })?;
    let journal = Journal {
        sender,
        failure,
        every_batch: durability == Durability::EveryBatch,
        acks: Vec::new(),
    };
    Ok((journal, loaded))
}

/// A row SQLite cannot give as the types the table declares.
fn corrupt(path: &Path, error: rusqlite::Error) -> KvError {
    KvError::Durable {
        path: path.to_owned(),
        kind: DurableErrorKind::Corrupt,
        message: "a row is not of the table's types".into(),
        source: Some(Arc::new(error)),
    }
}

/// Parses a stored value: JSON nested no deeper than `MAX_DEPTH`, checked before parsing (the
/// parser's own limit is off, as for Redis).
fn parse(text: &str) -> Result<Value, String> {
    use serde::Deserialize;
    let depth = crate::value::text_depth(text.as_bytes());
    if depth > crate::value::MAX_DEPTH {
        return Err(format!("nested {depth} deep"));
    }
    let mut parser = serde_json::Deserializer::from_str(text);
    parser.disable_recursion_limit();
    let value = Value::deserialize(&mut parser).map_err(|e| e.to_string())?;
    parser.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// The journal thread: owns the connection.
struct Thread {
    conn: Connection,
    receiver: mpsc::Receiver<ToJournal>,
    failure: Arc<OnceLock<KvError>>,
    durability: Durability,
    path: PathBuf,
}

impl Thread {
    fn run(mut self) {
        let mut last_commit = Duration::ZERO;
        loop {
            let Ok(first) = self.receiver.recv() else {
                return; // the owner is gone (its runtime ended): everything sent is committed
            };
            let mut group = Vec::new();
            let mut close = None;
            match first {
                ToJournal::Close(done) => close = Some(done),
                batch => group.push(batch),
            }
            // Group commit: under `EveryBatch` everything already queued; under `Interval(d)`
            // everything that comes within `d` of the first batch (less a commit's time, so that
            // the first is on disk within `d`).
            let until = match self.durability {
                Durability::Interval(d) => {
                    std::time::Instant::now().checked_add(d.saturating_sub(last_commit))
                }
                _ => None,
            };
            while close.is_none() {
                let next = match until {
                    Some(until) => {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        match self.receiver.recv_timeout(left) {
                            Ok(next) => next,
                            Err(_) => break,
                        }
                    }
                    None => match self.receiver.try_recv() {
                        Ok(next) => next,
                        Err(_) => break,
                    },
                };
                match next {
                    ToJournal::Close(done) => close = Some(done),
                    batch => group.push(batch),
                }
            }
            let started = std::time::Instant::now();
            self.commit(group);
            last_commit = started.elapsed();
            if let Some(done) = close {
                drop(self.conn);
                let _ = done.send(());
                return;
            }
        }
    }

    /// Writes the group in one transaction, commits, and sends the held answers.
    fn commit(&mut self, group: Vec<ToJournal>) {
        let mut acks = Vec::new();
        let mut batches = Vec::new();
        for message in group {
            if let ToJournal::Batch {
                changes,
                acks: held,
            } = message
            {
                acks.extend(held);
                batches.push(changes);
            }
        }
        let outcome = match self.failure.get() {
            Some(_) => Err(None), // refused since an earlier commit failed
            None => self.write(&batches).map_err(Some),
        };
        let error = match outcome {
            Ok(()) => None,
            Err(Some(error)) => {
                let error = KvError::Durable {
                    path: self.path.clone(),
                    kind: DurableErrorKind::Commit,
                    message: format!("a commit failed ({error}); the store refuses every call now"),
                    source: Some(Arc::new(error)),
                };
                tracing::error!(%error, "ephemeral-kv journal commit failed");
                let _ = self.failure.set(copy_error(&error));
                Some(error)
            }
            Err(None) => self.failure.get().map(copy_error),
        };
        for ack in acks {
            ack(error.as_ref().map(copy_error));
        }
    }

    fn write(&mut self, batches: &[Vec<Row>]) -> Result<(), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO kv (key, value, expires_at_ms) VALUES (?1, ?2, ?3)",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?;
            for (key, state) in batches.iter().flatten() {
                match state {
                    Some((value, at)) => {
                        let text = serde_json::to_string(&**value)
                            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                        put.execute(params![key, text, at])?;
                    }
                    None => {
                        delete.execute([key])?;
                    }
                }
            }
        }
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ekv-journal-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("kv.db")
    }

    /// Makes a file of this crate's format holding one row, written by hand.
    fn file_with_row(path: &Path, value: &str) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL, \
             expires_at_ms INTEGER) WITHOUT ROWID;
             PRAGMA application_id = {APPLICATION_ID};
             PRAGMA user_version = {FORMAT};"
        ))
        .unwrap();
        conn.execute("INSERT INTO kv VALUES ('k', ?1, NULL)", [value])
            .unwrap();
    }

    #[test]
    fn a_value_that_is_not_json_is_refused_as_corrupt_and_the_row_is_kept() {
        let path = temp_file("not-json");
        file_with_row(&path, "{not json");
        let Err(error) = open(&path, Durability::EveryBatch, None) else {
            panic!("opened a corrupt file");
        };
        assert!(matches!(
            error,
            KvError::Durable {
                kind: DurableErrorKind::Corrupt,
                ..
            }
        ));
        assert!(error.to_string().contains("key `k`"), "{error}");
        let conn = Connection::open(&path).unwrap();
        let kept: String = conn
            .query_row("SELECT value FROM kv WHERE key = 'k'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(kept, "{not json");
    }

    #[test]
    fn a_hand_written_row_of_json_is_loaded() {
        let path = temp_file("by-hand");
        file_with_row(&path, r#"{"a":[1,2.5,null]}"#);
        let (journal, loaded) = open(&path, Durability::EveryBatch, None).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].0, "k");
        assert_eq!(loaded[0].1, serde_json::json!({"a": [1, 2.5, null]}));
        assert_eq!(loaded[0].2, None);
        drop(journal);
    }
}
