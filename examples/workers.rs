//! A coordinator and a pool of workers sharing one store: the app the crate is for, in miniature.
//!
//! Run it with `cargo run --example workers`; to see the crate's log (one line per command, with
//! its key, outcome and `took_us`) between the example's own lines, run
//! `RUST_LOG=ephemeral_kv=debug cargo run --example workers`. Add `,workers=info` to the filter to
//! also see the example's own `tracing` lines and the `job` span each command ran in.
//!
//! What it shows, each with the call that does it:
//! - **One inbox, several workers**: the coordinator pushes 20 jobs with `list_push`; each of 4
//!   workers takes one at a time with `list_pop_front`, so every job goes to exactly one worker.
//! - **A lease per job**: the inbox delivers jobs 4 and 11 twice (at-least-once delivery). A worker
//!   takes `lease:job:<id>` with `set_if_absent(..).ttl(..)` before working and releases it with
//!   `delete`, so a duplicate is skipped, never run twice. Had the worker died, the TTL would have
//!   freed the lease.
//! - **A rate limit**: at most 8 job starts per 100 ms window, across all workers, counted with
//!   `incr(..).ttl(..)` (a fixed window: the TTL is set by the call that creates the counter). A
//!   worker over the limit waits for the window to end (`ttl` says how long), then tries again.
//! - **Results handed back**: each worker writes a typed `JobResult` to `job:<id>:result`; the
//!   coordinator awaits them all with `wait_for_as::<JobResult>`.
//! - **A progress watch**: after each job, a worker counts it in the `Progress` at `progress`
//!   (one atomic `update`); a task reads the `watch("progress")` stream and prints each event
//!   (`value_as::<Progress>`).
//! - **Shutdown**: when every result is in (or on Ctrl-C, via `tokio::signal::ctrl_c` in a
//!   `select!`), the coordinator calls `kv.shutdown().await`, which also ends the watch stream.
//!
//! It finishes by itself in well under a second.

use std::error::Error;
use std::io::IsTerminal;
use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, Ttl};
use futures::future::try_join_all;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::time::{sleep, timeout, Instant};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn Error + Send + Sync>;

const INBOX: &str = "jobs:inbox";
const JOBS: u32 = 20;
const WORKERS: usize = 4;
const LEASE: Duration = Duration::from_secs(2);
const RATE_KEY: &str = "rate:job-starts";
const RATE_LIMIT: i64 = 8;
const RATE_WINDOW: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u32,
    work_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct JobResult {
    job: u32,
    worker: String,
    answer: u64,
    took_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Progress {
    done: i64,
    total: u32,
    job: u32,
    worker: String,
}

/// Milliseconds since the start, for the example's lines.
fn at(start: Instant) -> String {
    format!("{:>4} ms", start.elapsed().as_millis())
}

fn result_key(job: u32) -> String {
    format!("job:{job}:result")
}

/// Waits until the fixed-window rate limit lets one more job start.
async fn rate_slot(kv: &KvHandle, me: &str, start: Instant) -> Result<(), KvError> {
    loop {
        let n = kv.incr(RATE_KEY, 1).ttl(RATE_WINDOW).await?;
        if n <= RATE_LIMIT {
            return Ok(());
        }
        let wait = match kv.ttl(RATE_KEY).await? {
            Ttl::Expires(left) => left,
            Ttl::Missing | Ttl::NoExpiry => Duration::ZERO, // the window just ended
        };
        println!(
            "{} {me}: over the rate limit ({n} > {RATE_LIMIT} starts in this window), waiting {} ms",
            at(start),
            wait.as_millis()
        );
        sleep(wait).await;
    }
}

/// Runs one job under its lease, within the rate limit. Returns whether it ran (a duplicate is
/// skipped).
async fn run_job(kv: &KvHandle, me: &str, job: Job, start: Instant) -> Result<bool, BoxError> {
    let lease = format!("lease:job:{}", job.id);
    if !kv.set_if_absent(&lease, me).ttl(LEASE).await? {
        let holder = kv.get(&lease).await?;
        let holder = holder.as_deref().and_then(|v| v.as_str()).unwrap_or("?");
        println!(
            "{} {me}: job {} is leased by {holder}, skipping the duplicate",
            at(start),
            job.id
        );
        return Ok(false);
    }
    if kv.exists(result_key(job.id)).await? {
        println!(
            "{} {me}: job {} is already done, skipping the duplicate",
            at(start),
            job.id
        );
        kv.delete(&lease).await?;
        return Ok(false);
    }

    rate_slot(kv, me, start).await?;
    let began = Instant::now();
    sleep(Duration::from_millis(job.work_ms)).await; // the work
    let answer = (1..=u64::from(job.id)).map(|n| n * n).sum();
    let result = JobResult {
        job: job.id,
        worker: me.to_owned(),
        answer,
        took_ms: u64::try_from(began.elapsed().as_millis())?,
    };
    // The result first, then the lease: a duplicate that gets the lease afterwards sees the result.
    // A plain `delete` is safe here because a job (at most 50 ms) never outlives its 2 s lease; a
    // job that might would release with a check that the lease is still its own.
    kv.set(result_key(job.id), &result).await?;
    kv.delete(&lease).await?;

    // Count it and say who did it, in one atomic step, so progress events arrive in order.
    let (job, worker) = (job.id, me.to_owned());
    kv.update("progress", move |current| {
        let done = current.and_then(|p| p["done"].as_i64()).unwrap_or(0) + 1;
        let progress = Progress {
            done,
            total: JOBS,
            job,
            worker: worker.clone(),
        };
        serde_json::to_value(progress).ok()
    })
    .await?;
    Ok(true)
}

/// Takes jobs from the shared inbox until it is empty. Returns how many it ran.
async fn worker(kv: KvHandle, me: String, start: Instant) -> Result<usize, BoxError> {
    tracing::info!(worker = %me, "worker started");
    let mut ran = 0;
    loop {
        let Some(job) = kv.list_pop_front(INBOX, 1).await?.pop() else {
            break; // the inbox is empty: all work is taken
        };
        let job: Job = serde_json::from_value(job)?;
        let span = tracing::info_span!("job", id = job.id, worker = %me);
        if run_job(&kv, &me, job, start).instrument(span).await? {
            ran += 1;
        }
    }
    tracing::info!(worker = %me, ran, "worker finished: inbox empty");
    Ok(ran)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .with_ansi(std::io::stdout().is_terminal()) // no colour codes when piped to a file
        .init();
    let start = Instant::now();
    let kv = KvHandle::builder().prefix("workers:").spawn();

    // The progress printer: every change to `progress`, in the order the store applied them.
    let mut events = kv.watch("progress").await?;
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event.map(|event| event.value_as::<Progress>()) {
                Ok(Ok(Some(p))) => println!(
                    "{} progress {:>2}/{}: job {} done by {}",
                    at(start),
                    p.done,
                    p.total,
                    p.job,
                    p.worker
                ),
                Ok(Ok(None)) => {} // a removal: not progress
                Ok(Err(err)) | Err(err) => println!("{} progress watch: {err}", at(start)),
            }
        }
    });

    // The inbox: jobs 1..=20, with jobs 4 and 11 delivered twice.
    let mut jobs = Vec::new();
    for id in 1..=JOBS {
        let work_ms = 10 + u64::from(id * 7 % 41);
        jobs.push(Job { id, work_ms });
        if id == 4 || id == 11 {
            jobs.push(Job { id, work_ms });
        }
    }
    let queued = kv.list_push(INBOX, &jobs).await?;
    println!(
        "{} coordinator: queued {queued} jobs ({JOBS} distinct) in {INBOX}",
        at(start)
    );

    let workers: Vec<_> = (1..=WORKERS)
        .map(|n| tokio::spawn(worker(kv.clone(), format!("worker-{n}"), start)))
        .collect();

    // Every result, typed, as soon as it is written; or Ctrl-C.
    let ids: Vec<u32> = (1..=JOBS).collect();
    let all_results = try_join_all(
        ids.iter()
            .map(|&id| kv.wait_for_as::<JobResult>(result_key(id))),
    );
    let results = tokio::select! {
        results = timeout(Duration::from_secs(10), all_results) => Some(results??),
        _ = tokio::signal::ctrl_c() => None,
    };

    match results {
        Some(results) => {
            for handle in workers {
                handle.await??; // they stop on their own once the inbox is empty
            }
            println!(
                "{} coordinator: all {} results in",
                at(start),
                results.len()
            );
            for n in 1..=WORKERS {
                let me = format!("worker-{n}");
                let mine: Vec<_> = results.iter().filter(|r| r.worker == me).collect();
                let ids: Vec<u32> = mine.iter().map(|r| r.job).collect();
                let busy: u64 = mine.iter().map(|r| r.took_ms).sum();
                println!("  {me}: {} jobs {ids:?}, {busy} ms of work", ids.len());
            }
            let answers: u64 = results.iter().map(|r| r.answer).sum();
            println!("  sum of the answers: {answers}");
            let stats = kv.stats().await?;
            println!(
                "  store: {} commands, {} entries",
                stats.commands, stats.entries
            );
            kv.shutdown().await;
        }
        None => {
            println!("{} coordinator: Ctrl-C, shutting down", at(start));
            kv.shutdown().await;
            for handle in workers {
                // A worker stopped mid-way by the shutdown gets `KvError::Closed`: expected here.
                if let Err(err) = handle.await? {
                    if !matches!(err.downcast_ref(), Some(KvError::Closed)) {
                        return Err(err);
                    }
                }
            }
        }
    }
    printer.await?; // the watch stream ended with the store
    println!("{} coordinator: store shut down", at(start));
    Ok(())
}
