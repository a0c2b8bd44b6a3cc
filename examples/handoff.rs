//! One task waits for another's result with `wait_for`, bounded by a timeout.
//!
//! Run it with `cargo run --example handoff`.
//!
//! A worker publishes progress under `job:7:` and, after three seconds of work, its result at
//! `job:7:result`. The caller waits for the result with `tokio::time::timeout(.., kv.wait_for(..))`
//! while a `watch` on `job:7:` prints the progress as it happens, then takes the result with
//! `get_del` so nobody takes it twice. A second job, whose worker never answers, shows the timeout.
//! Time is tokio's paused clock, so the run takes no real time.

use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, WatchEvent};
use futures::StreamExt;
use serde_json::json;
use tokio::time::{sleep, timeout, Instant};

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), KvError> {
    let kv = KvHandle::spawn();
    let start = Instant::now();
    let at = move || format!("{:>4.1}s", start.elapsed().as_secs_f64());

    // Print every change under job:7: as it happens.
    let mut events = kv.watch("job:7:").await?;
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Ok(WatchEvent::Set { key, value }) => println!("{} watch: {key} = {value}", at()),
                Ok(WatchEvent::Deleted { key }) => println!("{} watch: {key} deleted", at()),
                Ok(other) => println!("{} watch: {other:?}", at()),
                Err(lagged) => println!("{} watch: {lagged}", at()),
            }
        }
    });

    let worker = kv.clone();
    tokio::spawn(async move {
        for percent in [30, 60, 90] {
            sleep(Duration::from_secs(1)).await;
            worker.set("job:7:progress", percent).await?;
        }
        worker.set("job:7:result", json!({"rows": 1234})).await?;
        Ok::<_, KvError>(())
    });

    match timeout(Duration::from_secs(5), kv.wait_for("job:7:result")).await {
        Ok(result) => println!("{} caller: job 7 answered {}", at(), result?),
        Err(_) => println!("{} caller: job 7 timed out", at()),
    }
    let taken = kv.get_del("job:7:result").await?;
    println!(
        "{} caller: took the result: {}",
        at(),
        taken.unwrap_or_default()
    );

    // Job 8's worker never answers: the wait gives up after 2 s and the store forgets it.
    match timeout(Duration::from_secs(2), kv.wait_for("job:8:result")).await {
        Ok(result) => println!("{} caller: job 8 answered {}", at(), result?),
        Err(_) => println!("{} caller: job 8 timed out", at()),
    }

    kv.shutdown().await; // ends the watch stream, so the printer finishes
    let _ = printer.await;
    Ok(())
}
