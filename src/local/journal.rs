//! The journal of a durable store (feature `durable`): the SQLite file every change is committed
//! to, and the thread that commits.
//!
//! The owner task never touches the disk and never waits for it. The store keeps the set of keys
//! changed since the last hand-off, one entry per key however often it changes (`ChangeLog`'s
//! dirty set), and under [`Durability::EveryBatch`] the journal keeps the answers of the commands
//! that changed something. Only when the journal thread is **ready** (idle; under `Interval(d)`,
//! also `d` after its last commit began) does the owner hand it, in one message, each such key's
//! final state (the stored `Arc<Value>` and its deadline, or "gone") and the held answers. The
//! thread serializes the values first (so that it holds the owner's `Arc`s only that long: a list
//! the owner changes meanwhile is copied, as it would be for a reader), writes them in one SQLite
//! transaction, commits (synced), leaves the answers for the owner, and says it is ready again.
//!
//! **Group commit.** The owner sends a commit's answers itself, on the runtime, then yields and
//! takes the commands waiting in its mailbox, turn after turn (up to [`GATHER`]), until as many
//! writes have come as that commit answered and a turn finds less than a full batch; only then
//! does it hand off the next commit. The callers just answered usually write again at once, so
//! their writes join that commit instead of the one after it: with 256 writers, a commit holds
//! each writer's next write, where handing off at once would split them over two commits that
//! alternate. Each turn's changes go to the thread as they are gathered, which writes them into
//! the open transaction meanwhile, so the commit itself only has the last turn's rows to write.
//!
//! So at most one hand-off is in flight, and what waits is bounded by the keys changed since
//! (the store's size, plus keys deleted since): the channel needs no bound. Should those changes
//! pile up past [`BACKLOG`] (a disk far slower than the writers), the owner stops taking
//! commands until the thread takes them ([`Journal::backlogged`]): the mailbox's bound then
//! pushes back on callers. A hand-off is always whole in one transaction, so no command (a
//! `transaction`, an `mset`) is ever half on disk.
//!
//! The file (`docs/durability.md`): one table `kv (key, value, expires_at_ms)`, WAL mode,
//! `synchronous=FULL`, `locking_mode=EXCLUSIVE` (one store at a time, across processes), marked
//! as this crate's with `PRAGMA application_id` and versioned with `user_version`.
//!
//! One store per file in this process is also tracked in a process-wide table, so that a store
//! whose last handle was just dropped (its owner task about to close the file) is waited for by a
//! new `durable(path)` on the same file instead of refusing it as locked.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, ErrorCode, OpenFlags};
use serde_json::Value;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::command::{Ack, Detached, Message, Polled};
use crate::durability::Durability;
use crate::error::{DurableErrorKind, KvError};
use crate::local::store::{Journaled, Store};

/// `PRAGMA application_id` of this crate's files: "EKV1".
pub(crate) const APPLICATION_ID: i32 = 0x454B_5631;

/// The file format this version writes and reads (`PRAGMA user_version`).
pub(crate) const FORMAT: i32 = 1;

/// How many changes may wait for the journal thread before the owner stops taking commands until
/// it takes them. Changes to one key count once each, so this is reached only when the thread
/// falls seconds behind (at a few hundred thousand writes a second): memory stays bounded, and in
/// the common case the owner never waits.
pub(crate) const BACKLOG: u64 = 1 << 20;

/// How many turns the owner takes, after answering a commit, before it hands off the next commit
/// however many writes have come: the answered callers' next writes join the next commit, and
/// neither a stream of commands nor callers that do not write again hold a commit back longer.
const GATHER: u8 = 8;

/// How long a `durable(path)` waits for a store of this process whose handles are all gone to
/// close the same file, before it is refused as locked.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// A key read from the file: its value and what was left of its TTL when it was read.
pub(crate) type Loaded = (String, Value, Option<Duration>);

/// What the owner sends the journal thread.
enum ToJournal {
    /// The final state of every key changed since the last hand-off, at `now` on tokio's clock
    /// (`wall` on the system's), and the answers to send once it is committed. Without `commit`
    /// it is a part of the next commit, staged (written into its open transaction) while the
    /// owner gathers the rest: see [`Journal::flush`].
    Changes {
        changes: Vec<Journaled>,
        now: Instant,
        wall: SystemTime,
        acks: Vec<Ack>,
        commit: bool,
    },
    /// Commit what is queued, close the file, then answer.
    Close(oneshot::Sender<()>),
}

/// What the owner task and the journal thread share.
#[derive(Debug, Default)]
struct Shared {
    /// Set by the journal thread when a commit fails (or it stops); from then on every call is
    /// refused.
    failure: OnceLock<KvError>,
    /// Set by the journal thread when it wants the next hand-off; taken by the owner with it.
    ready: AtomicBool,
    /// The answers of the last committed hand-off, and the commit's error if it failed: left by
    /// the journal thread, sent by the owner task (see [`Journal::answer_committed`]).
    committed: Mutex<Option<Committed>>,
    /// Wakes the owner task when the thread becomes ready.
    wake: Arc<Notify>,
}

/// A committed hand-off's answers and what came of the commit.
struct Committed {
    acks: Vec<Ack>,
    error: Option<KvError>,
}

impl std::fmt::Debug for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committed")
            .field("acks", &self.acks.len())
            .field("error", &self.error)
            .finish()
    }
}

impl Committed {
    /// Sends every answer.
    fn answer(self) {
        for ack in self.acks {
            ack(self.error.as_ref().map(copy_error));
        }
    }
}

/// The owner task's side of the journal.
pub(crate) struct Journal {
    sender: mpsc::Sender<ToJournal>,
    shared: Arc<Shared>,
    every_batch: bool,
    /// Answers held until the next hand-off is committed.
    acks: Vec<Ack>,
    /// Detached answers of commands still parked (waiting pops): held once they answer.
    parked: Vec<Detached>,
    /// The store's change count at the last hand-off.
    handed: u64,
    /// How many more full batches the owner may take, after answering a commit, before it hands
    /// off the next changes ([`GATHER`]).
    gathering: u8,
    /// Whether parts of the next commit were handed off while gathering, so that it is due even
    /// if nothing changed since.
    staged: bool,
    /// How many answers the last commit sent, and how many writes have been held since: while
    /// fewer of those callers have written again, the owner gathers on.
    answered: usize,
    gathered: usize,
    /// How many changes may wait before the owner is held back ([`BACKLOG`]).
    backlog: u64,
    /// This store's entry in the process's table of open files.
    open: Arc<OpenFile>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("every_batch", &self.every_batch)
            .field("held", &self.acks.len())
            .field("parked", &self.parked.len())
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
        self.shared.failure.get().map(copy_error)
    }

    /// What the owner task waits on, beside its mailbox, for the journal thread to be ready.
    pub(crate) fn wake(&self) -> Arc<Notify> {
        Arc::clone(&self.shared.wake)
    }

    /// Tells the table of open files which mailbox is this store's: once it has no sender left,
    /// the store is closing.
    pub(crate) fn watch_mailbox(&self, mailbox: tokio::sync::mpsc::WeakSender<Message>) {
        if let Ok(mut slot) = self.open.mailbox.lock() {
            *slot = Some(mailbox);
        }
    }

    /// Holds an answer until the changes so far are committed.
    pub(crate) fn hold(&mut self, ack: Ack) {
        self.gathered += 1;
        self.acks.push(ack);
    }

    /// Keeps the relay of a command that parked its reply, to hold its answer once it comes.
    pub(crate) fn park(&mut self, relay: Detached) {
        self.parked.push(relay);
    }

    /// Whether more than [`BACKLOG`] changes wait for the journal thread, which is busy: the
    /// owner then takes no command until it is ready.
    pub(crate) fn backlogged(&self, marks: u64) -> bool {
        marks.wrapping_sub(self.handed) > self.backlog && !self.shared.ready.load(Ordering::Acquire)
    }

    /// After a batch: holds the answers of parked commands that answered, and if the journal
    /// thread is ready and anything waits, hands it the changes and the held answers.
    ///
    /// Returns whether the owner is to take another turn before the next hand-off: this call sent
    /// a commit's answers instead (see [`Journal::answer_committed`]), or the owner is still
    /// gathering the writes that follow them: while fewer writes have come than that commit
    /// answered, or its last turn took a full batch (`full`), for at most [`GATHER`] turns. While
    /// it gathers, the journal thread (idle until the next commit)
    /// is handed each turn's changes as a part of that commit, to write them into its
    /// transaction meanwhile: the commit then only has the last turn's rows left to write.
    pub(crate) fn flush(&mut self, store: &mut Store, now: Instant, full: bool) -> bool {
        if self.answer_committed() {
            self.gathering = GATHER;
            return true;
        }
        self.poll_parked();
        if self.gathering > 0 && (full || self.gathered < self.answered) {
            self.gathering -= 1;
            if self.due(store) {
                self.hand_off(store, now, false);
            }
            return true;
        }
        self.gathering = 0;
        if self.due(store) && self.shared.ready.swap(false, Ordering::AcqRel) {
            self.hand_off(store, now, true);
        }
        false
    }

    /// Sends the answers of the last commit, if the journal thread has left any; whether it did.
    ///
    /// They are sent here, on the runtime, rather than by the journal thread, for group commit:
    /// the callers just answered are likely to write again at once, so the owner sends their
    /// answers, lets them run (it yields once) and takes what they send before the next hand-off,
    /// which then holds their writes too instead of leaving them for the commit after.
    fn answer_committed(&mut self) -> bool {
        if !self.every_batch {
            return false; // answers are held only under `EveryBatch`
        }
        let committed = self
            .shared
            .committed
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        match committed {
            Some(committed) => {
                self.answered = committed.acks.len();
                self.gathered = 0;
                committed.answer();
                true
            }
            None => false,
        }
    }

    /// Moves the answers of parked commands that answered to the held ones, and forgets those
    /// whose caller left. Also called before each batch: a waiting pop whose caller left is then
    /// seen as such by the batch's pushes, and takes nothing, as in a store without a journal.
    pub(crate) fn poll_parked(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let mut acks = Vec::new();
        self.parked.retain_mut(|relay| match relay.poll() {
            Polled::Answered(ack) => {
                acks.push(ack);
                false
            }
            Polled::Parked => true,
            Polled::Gone => false,
        });
        self.acks.extend(acks);
    }

    /// Whether anything waits for a hand-off: changes since the last one, held answers, or
    /// staged parts of a commit.
    fn due(&self, store: &Store) -> bool {
        store.marks() != self.handed || !self.acks.is_empty() || self.staged
    }

    /// Sends the journal thread every change since the last hand-off, and the held answers: to
    /// be committed with the parts staged before, or (not `commit`) staged as one more part.
    fn hand_off(&mut self, store: &mut Store, now: Instant, commit: bool) {
        self.handed = store.marks();
        self.staged = !commit;
        let message = ToJournal::Changes {
            changes: store.take_journal(now),
            now,
            wall: SystemTime::now(),
            acks: std::mem::take(&mut self.acks),
            commit,
        };
        if let Err(mpsc::SendError(ToJournal::Changes { acks, .. })) = self.sender.send(message) {
            // The thread is gone (it only ends when told to, or by a panic): refuse the writes.
            let error = self.failed().unwrap_or_else(stopped);
            for ack in acks {
                ack(Some(copy_error(&error)));
            }
        }
    }

    /// Hands off what is left, commits it and closes the file; returns once it is closed, so
    /// that the file can be opened again at once.
    pub(crate) async fn close(mut self, store: &mut Store, now: Instant) {
        self.open.closing.store(true, Ordering::Release);
        self.answer_committed();
        self.poll_parked();
        if self.due(store) {
            self.hand_off(store, now, true);
        }
        let (done, closed) = oneshot::channel();
        if self.sender.send(ToJournal::Close(done)).is_ok() {
            let _ = closed.await;
        }
        self.answer_committed();
    }
}

/// The error of a journal thread that stopped without a failed commit (a panic).
fn stopped() -> KvError {
    KvError::Durable {
        path: PathBuf::new(),
        kind: DurableErrorKind::Commit,
        message: "the journal thread has stopped".into(),
        source: None,
    }
}

/// A file a store of this process has open: in [`OPEN_FILES`] from its open until its journal
/// thread has closed it.
#[derive(Debug, Default)]
struct OpenFile {
    /// The store's mailbox, to tell whether any handle is left.
    mailbox: Mutex<Option<tokio::sync::mpsc::WeakSender<Message>>>,
    /// Set when the owner task starts closing the file (a shutdown, or its last handle gone).
    closing: AtomicBool,
    /// Set, under the lock, when the file is closed; `released` is notified then.
    closed: Mutex<bool>,
    released: Condvar,
}

impl OpenFile {
    /// Whether the store is on its way out: its owner is closing, or no handle is left.
    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
            || self
                .mailbox
                .lock()
                .is_ok_and(|slot| slot.as_ref().is_some_and(|weak| weak.strong_count() == 0))
    }

    /// Waits, up to `limit`, for the file to be closed; whether it was.
    fn wait_closed(&self, limit: Duration) -> bool {
        let Ok(closed) = self.closed.lock() else {
            return false;
        };
        self.released
            .wait_timeout_while(closed, limit, |closed| !*closed)
            .is_ok_and(|(closed, _)| *closed)
    }
}

/// The files the stores of this process have open, by canonical path.
static OPEN_FILES: Mutex<Vec<(PathBuf, Arc<OpenFile>)>> = Mutex::new(Vec::new());

/// The entry of the open file at `path`, if a store of this process has it.
fn open_file(path: &Path) -> Option<Arc<OpenFile>> {
    let path = std::fs::canonicalize(path).ok()?;
    let files = OPEN_FILES.lock().ok()?;
    files
        .iter()
        .find(|(open, _)| *open == path)
        .map(|(_, file)| Arc::clone(file))
}

/// Closes the file's entry: called by the journal thread once its connection is closed.
struct Release {
    path: Option<PathBuf>,
    file: Arc<OpenFile>,
    shared: Arc<Shared>,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let (Some(path), Ok(mut files)) = (&self.path, OPEN_FILES.lock()) {
            files.retain(|(open, file)| !(open == path && Arc::ptr_eq(file, &self.file)));
        }
        if let Ok(mut closed) = self.file.closed.lock() {
            *closed = true;
        }
        self.file.released.notify_all();
        // Whatever the reason the thread ends, calls after it are refused, not left waiting.
        let _ = self.shared.failure.set(stopped());
        self.shared.ready.store(true, Ordering::Release);
        self.shared.wake.notify_one();
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
/// A file holding more live keys than `max_entries` is refused. A file a store of this process is
/// closing (its handles all dropped, or shutting down) is waited for, up to [`CLOSE_WAIT`].
pub(crate) fn open(
    path: &Path,
    durability: Durability,
    max_entries: Option<usize>,
) -> Result<(Journal, Vec<Loaded>), KvError> {
    // Looked up before the attempt too: a store closing its file may finish (and leave the
    // table) between this attempt's refusal and a look after it.
    let before = open_file(path);
    match open_once(path, durability, max_entries) {
        Err(KvError::Durable {
            kind: DurableErrorKind::Locked,
            ..
        }) if before
            .or_else(|| open_file(path))
            .is_some_and(|file| file.is_closing() && file.wait_closed(CLOSE_WAIT)) =>
        {
            open_once(path, durability, max_entries)
        }
        opened => opened,
    }
}

/// [`open`], once.
fn open_once(
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
            // The text is parsed where SQLite holds it, not copied out first.
            let text = row
                .get_ref(1)
                .and_then(|text| text.as_str().map_err(Into::into))
                .map_err(|e| corrupt(path, e))?;
            let at: Option<i64> = row.get(2).map_err(|e| corrupt(path, e))?;
            let value = parse(text).map_err(|why| KvError::Durable {
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
    let shared = Arc::new(Shared::default());
    shared.ready.store(true, Ordering::Release);
    let open = Arc::new(OpenFile::default());
    let canonical = std::fs::canonicalize(path).ok();
    if let (Some(canonical), Ok(mut files)) = (&canonical, OPEN_FILES.lock()) {
        files.push((canonical.clone(), Arc::clone(&open)));
    }
    let thread = Thread {
        conn,
        receiver,
        shared: Arc::clone(&shared),
        durability,
        path: path.to_owned(),
        held: Vec::new(),
        in_transaction: false,
        staging_failed: None,
        release: Release {
            path: canonical,
            file: Arc::clone(&open),
            shared: Arc::clone(&shared),
        },
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
        shared,
        every_batch: durability == Durability::EveryBatch,
        acks: Vec::new(),
        parked: Vec::new(),
        handed: 0,
        gathering: 0,
        staged: false,
        answered: 0,
        gathered: 0,
        backlog: BACKLOG,
        open,
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

/// One key's change as the journal thread writes it: its JSON text and deadline in ms since the
/// epoch, or `None`: the key is gone.
type Row = (String, Option<(String, Option<i64>)>);

/// The journal thread: owns the connection.
struct Thread {
    /// Declared before `release`: the connection is closed before the file is said to be.
    conn: Connection,
    receiver: mpsc::Receiver<ToJournal>,
    shared: Arc<Shared>,
    durability: Durability,
    path: PathBuf,
    /// The answers of the commit in the making: of its staged parts and its last one.
    held: Vec<Ack>,
    /// Whether a transaction is open: a part of the next commit has been written into it.
    in_transaction: bool,
    /// Why a part of the next commit could not be written: that commit then fails whole.
    staging_failed: Option<rusqlite::Error>,
    /// Dropped last, however the thread ends: says the file is closed.
    release: Release,
}

impl Thread {
    fn run(mut self) {
        let mut early = None;
        loop {
            let message = match early.take() {
                Some(message) => message,
                None => match self.receiver.recv() {
                    Ok(message) => message,
                    // The owner is gone (its runtime ended): everything it sent to commit is
                    // committed (a staged part it never finished is rolled back, unanswered).
                    Err(_) => return,
                },
            };
            let started = std::time::Instant::now();
            match message {
                ToJournal::Close(done) => {
                    let Thread { conn, release, .. } = self;
                    drop(conn);
                    drop(release);
                    let _ = done.send(());
                    return;
                }
                ToJournal::Changes {
                    changes,
                    now,
                    wall,
                    acks,
                    commit,
                } => {
                    self.stage(changes, now, wall, acks);
                    if !commit {
                        // A part of the next commit: the owner is still gathering the rest, and
                        // the thread is not ready again until that commit is done.
                        continue;
                    }
                    self.commit();
                }
            }
            // Under `Interval(d)` the next hand-off comes `d` after this one began; under
            // `EveryBatch` as soon as this one is committed. Only a closing owner sends before
            // it is told: that is handled at once.
            if let Durability::Interval(d) = self.durability {
                let left = d.saturating_sub(started.elapsed());
                match self.receiver.recv_timeout(left) {
                    Ok(message) => early = Some(message),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            self.ready();
        }
    }

    /// Tells the owner it may hand off the next changes.
    fn ready(&self) {
        self.shared.ready.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }

    /// Writes the changes into the open transaction (opening it), and holds their answers for
    /// the commit. Once a part has failed, or a commit before, the rest is not written: that
    /// commit fails whole.
    fn stage(&mut self, changes: Vec<Journaled>, now: Instant, wall: SystemTime, acks: Vec<Ack>) {
        self.held.extend(acks);
        if self.shared.failure.get().is_some() || self.staging_failed.is_some() {
            return;
        }
        if let Err(error) = self.write(changes, now, wall) {
            self.staging_failed = Some(error);
        }
    }

    /// Commits the transaction (all its parts, or none of them), and leaves the held answers for
    /// the owner task to send.
    fn commit(&mut self) {
        let outcome = match (self.shared.failure.get(), self.staging_failed.take()) {
            (Some(_), _) => Err(None), // refused since an earlier commit failed
            (None, Some(error)) => Err(Some(error)),
            (None, None) => self.finish().map_err(Some),
        };
        if outcome.is_err() && self.in_transaction {
            // Nothing of it stays: the store refuses every call from now on anyway.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.in_transaction = false;
        }
        let acks = std::mem::take(&mut self.held);
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
                let _ = self.shared.failure.set(copy_error(&error));
                Some(error)
            }
            Err(None) => self.shared.failure.get().map(copy_error),
        };
        if acks.is_empty() {
            return;
        }
        // Answers are held only under `EveryBatch`, where the thread says it is ready right after
        // this, which wakes the owner for both. (Woken for the answers alone, it would hand off
        // the next changes before the callers answered could add theirs.) The owner takes a
        // commit's answers before it hands off the next changes, so none are left in the slot;
        // should some be, they are sent here.
        let earlier = match self.shared.committed.lock() {
            Ok(mut slot) => slot.replace(Committed { acks, error }),
            Err(_) => Some(Committed { acks, error }),
        };
        if let Some(earlier) = earlier {
            earlier.answer();
        }
    }

    /// Commits the open transaction, if any part was written.
    fn finish(&mut self) -> Result<(), rusqlite::Error> {
        if self.in_transaction {
            self.conn.execute_batch("COMMIT")?;
            self.in_transaction = false;
        }
        Ok(())
    }

    /// Serializes every change (dropping the owner's values as it goes), then writes them into
    /// the open transaction, opening one if none is.
    fn write(
        &mut self,
        changes: Vec<Journaled>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), rusqlite::Error> {
        if changes.is_empty() {
            return Ok(()); // only answers to send: a parked pop that timed out
        }
        let wall = epoch_ms(wall);
        let mut rows: Vec<Row> = Vec::with_capacity(changes.len());
        for (key, state) in changes {
            let state = match state {
                Some((value, deadline)) => {
                    let text = serde_json::to_string(&*value)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    drop(value);
                    let at = deadline.map(|deadline| {
                        let left = deadline.saturating_duration_since(now).as_millis();
                        wall.saturating_add(i64::try_from(left).unwrap_or(i64::MAX))
                    });
                    Some((text, at))
                }
                None => None,
            };
            rows.push((key, state));
        }
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN")?;
            self.in_transaction = true;
        }
        let mut put = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO kv (key, value, expires_at_ms) VALUES (?1, ?2, ?3)",
        )?;
        let mut delete = self.conn.prepare_cached("DELETE FROM kv WHERE key = ?1")?;
        for (key, state) in &rows {
            match state {
                Some((text, at)) => {
                    put.execute(params![key, text, at])?;
                }
                None => {
                    delete.execute([key])?;
                }
            }
        }
        Ok(())
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

    /// The backlog bound: changes (not keys) past it, while the thread is busy, hold the owner
    /// back; the thread becoming ready, or the hand-off, lets it go on.
    #[test]
    fn changes_past_the_backlog_hold_the_owner_back_until_the_thread_is_ready() {
        let path = temp_file("backlog");
        let hour = Durability::Interval(Duration::from_secs(3600));
        let (mut journal, _) = open(&path, hour, None).unwrap();
        journal.backlog = 10;
        let mut store = Store::new(crate::closure::StoreId::new(), None, 0);
        store.start_journal();
        let now = Instant::now();
        store
            .set("first".into(), Value::from(0), None, now)
            .unwrap();
        // Handed off at once (the thread was ready), which keeps the thread busy for an hour.
        journal.flush(&mut store, now, false);
        assert!(!journal.shared.ready.load(Ordering::Acquire));
        for i in 0..10 {
            // One key, rewritten: one row to write, but ten changes.
            store.set("hot".into(), Value::from(i), None, now).unwrap();
        }
        assert!(!journal.backlogged(store.marks()));
        store
            .set("one-more".into(), Value::from(0), None, now)
            .unwrap();
        assert!(journal.backlogged(store.marks()));
        // Nothing is handed off while the thread is busy.
        journal.flush(&mut store, now, false);
        assert!(journal.backlogged(store.marks()));
        // Ready (as the thread says after its interval): no longer held back, and handed off.
        journal.shared.ready.store(true, Ordering::Release);
        assert!(!journal.backlogged(store.marks()));
        journal.flush(&mut store, now, false);
        assert_eq!(journal.handed, store.marks());
        assert!(!journal.backlogged(store.marks()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(journal.close(&mut store, now));
        // What was handed off, and what the close handed off, is in the file.
        let conn = Connection::open(&path).unwrap();
        let rows: Vec<(String, String)> = conn
            .prepare("SELECT key, value FROM kv ORDER BY key")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = [("first", "0"), ("hot", "9"), ("one-more", "0")];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(rows, expected);
    }

    /// Waits, up to 10 s, for the journal thread to be ready again after a hand-off: woken by its
    /// `Notify`, as the owner task is (the thread is a real one, so the clock is the real one).
    fn wait_for_commit(journal: &Journal) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), async {
                while !journal.shared.ready.load(Ordering::Acquire) {
                    journal.shared.wake.notified().await;
                }
            })
            .await
            .expect("the journal thread commits within 10 s");
        });
    }

    /// A journal on a fresh file at `path`, the store it journals, and the instant the test runs at.
    fn journaled(path: &Path) -> (Journal, Store, Instant) {
        let (journal, _) = open(path, Durability::EveryBatch, None).unwrap();
        let mut store = Store::new(crate::closure::StoreId::new(), None, 0);
        store.start_journal();
        (journal, store, Instant::now())
    }

    /// Makes answers that report, on the returned channel, their name and whether they were OK.
    fn answer_channel() -> (
        impl Fn(&'static str) -> Ack,
        std::sync::mpsc::Receiver<(&'static str, bool)>,
    ) {
        let (answered, answers) = std::sync::mpsc::channel();
        let ack = move |name: &'static str| -> Ack {
            let answered = answered.clone();
            Box::new(move |error: Option<KvError>| {
                let _ = answered.send((name, error.is_none()));
            })
        };
        (ack, answers)
    }

    /// Group commit: a commit's answers are sent by the owner, which then takes up to [`GATHER`]
    /// more turns before it hands off the next commit, staging each turn's changes, so that the
    /// writers it answered join it; no more than that.
    #[test]
    fn after_answering_a_commit_the_owner_gathers_a_bounded_number_of_batches() {
        let path = temp_file("gather");
        let (mut journal, mut store, now) = journaled(&path);
        let (ack, answers) = answer_channel();
        store.set("a".into(), Value::from(1), None, now).unwrap();
        journal.hold(ack("a"));
        // The thread is ready: handed off at once, and nothing is answered before the commit.
        assert!(!journal.flush(&mut store, now, false));
        assert_eq!(journal.handed, store.marks());
        wait_for_commit(&journal);
        assert!(
            answers.try_recv().is_err(),
            "answered by the journal thread"
        );

        store.set("b".into(), Value::from(2), None, now).unwrap();
        journal.hold(ack("b"));
        // This turn sends the commit's answers and hands off nothing.
        assert!(journal.flush(&mut store, now, false));
        assert_eq!(answers.try_recv().unwrap(), ("a", true));
        assert_ne!(journal.handed, store.marks());
        // Full batches keep coming: the owner takes GATHER more before the next commit, handing
        // each turn's changes to the thread as a staged part of it. Nothing is answered before
        // that commit.
        for n in 0..GATHER {
            store
                .set(format!("g{n}"), Value::from(n), None, now)
                .unwrap();
            journal.hold(ack("g"));
            assert!(journal.flush(&mut store, now, true));
            assert_eq!(journal.handed, store.marks());
            assert!(journal.staged);
        }
        // Only the owner sends answers, once their commit is done: none has been.
        assert!(answers.try_recv().is_err(), "answered before the commit");
        assert!(!journal.flush(&mut store, now, true));
        assert!(!journal.staged);
        assert_eq!(journal.handed, store.marks());

        wait_for_commit(&journal);
        store.set("c".into(), Value::from(3), None, now).unwrap();
        journal.hold(ack("c"));
        assert!(journal.flush(&mut store, now, false));
        // One commit answers "b" and every staged part's writes.
        let mut answered: Vec<_> = answers.try_iter().collect();
        answered.sort_unstable();
        let mut expected = vec![("b", true)];
        expected.extend(std::iter::repeat_n(("g", true), usize::from(GATHER)));
        assert_eq!(answered, expected);
        // Nine callers were answered and none has written again ("c" came before the answers):
        // the owner waits for them, turn after turn, even with the mailbox drained, but no more
        // than GATHER turns.
        for _ in 0..GATHER {
            assert!(journal.flush(&mut store, now, false));
        }
        assert!(!journal.flush(&mut store, now, false));
        assert_eq!(journal.handed, store.marks());
        assert!(!journal.staged);
        // The close sends the last commit's answers.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(journal.close(&mut store, now));
        assert_eq!(answers.try_recv().unwrap(), ("c", true));
        // Every write is in the file: the staged ones with the rest.
        let (_, mut loaded) = open(&path, Durability::EveryBatch, None).unwrap();
        loaded.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<&str> = loaded.iter().map(|(key, ..)| key.as_str()).collect();
        let mut expected = vec!["a", "b", "c"];
        let staged: Vec<String> = (0..GATHER).map(|n| format!("g{n}")).collect();
        expected.extend(staged.iter().map(String::as_str));
        assert_eq!(keys, expected);
    }

    /// Group commit ends as soon as every caller the last commit answered has written again and
    /// the mailbox is drained, without waiting out its turns.
    #[test]
    fn the_owner_commits_once_every_answered_caller_has_written_again() {
        let (mut journal, mut store, now) = journaled(&temp_file("gathered"));
        let (ack, answers) = answer_channel();
        let answered = || answers.try_iter().map(|(_, ok)| ok).collect::<Vec<_>>();
        let write = |store: &mut Store, journal: &mut Journal, key: &str| {
            store.set(key.into(), Value::from(1), None, now).unwrap();
            journal.hold(ack("w"));
        };
        for key in ["a", "b", "c"] {
            write(&mut store, &mut journal, key);
        }
        assert!(!journal.flush(&mut store, now, false));
        wait_for_commit(&journal);
        assert!(journal.flush(&mut store, now, false)); // sends the three answers
        assert_eq!(answered(), vec![true; 3]);
        // One of the three writes again: staged, and the owner gathers on.
        write(&mut store, &mut journal, "a");
        assert!(journal.flush(&mut store, now, false));
        assert!(journal.staged);
        // The other two: the commit is handed off with that turn.
        write(&mut store, &mut journal, "b");
        write(&mut store, &mut journal, "c");
        assert!(!journal.flush(&mut store, now, false));
        assert!(!journal.staged);
        assert_eq!(journal.handed, store.marks());
        wait_for_commit(&journal);
        assert!(journal.flush(&mut store, now, false));
        assert_eq!(answered(), vec![true; 3]);
        drop(journal);
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
