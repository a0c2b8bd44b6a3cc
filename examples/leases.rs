//! Workers competing for a job lock with a TTL, renewing it while they work and releasing it.
//!
//! Run it with `cargo run --example leases`.
//!
//! Three workers try to take `lock:job:7` with `set_if_absent(..).ttl(..)`: exactly one gets it.
//! The holder renews its lease with `compare_and_set(.., Some(me), me).ttl(..)`, which succeeds
//! only while it still holds the lock, and releases it with a transaction that deletes the lock
//! only if it is still its own. The first holder "crashes" halfway (stops renewing): its lease runs
//! out and another worker takes over. Time is tokio's paused clock, so the run takes no real time.

use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle};
use serde_json::json;
use tokio::time::{sleep, Instant};

const LOCK: &str = "lock:job:7";
const LEASE: Duration = Duration::from_secs(3);

/// Releases the lock only if `me` still holds it, in one atomic command.
async fn release(kv: &KvHandle, me: &str) -> Result<bool, KvError> {
    let me = json!(me);
    kv.transaction(move |txn| txn.get(LOCK) == Some(&me) && txn.delete(LOCK))
        .await
}

async fn worker(kv: KvHandle, me: String, start: Instant) -> Result<(), KvError> {
    let at = || format!("{:>4.1}s", start.elapsed().as_secs_f64());
    for attempt in 0.. {
        if kv.set_if_absent(LOCK, &me).ttl(LEASE).await? {
            println!("{} {me}: took the lock", at());
            break;
        }
        if attempt == 0 {
            let holder = kv.get(LOCK).await?.unwrap_or_default();
            println!("{} {me}: lock held by {holder}, retrying every 0.5s", at());
        }
        sleep(Duration::from_millis(500)).await;
    }
    let crashes = me == "worker-1" && kv.incr("crashes", 1).await? == 1;
    for step in 1..=4 {
        sleep(Duration::from_secs(1)).await; // one step of work
        if crashes && step == 2 {
            println!("{} {me}: crashed after step {step}, never renews", at());
            return Ok(());
        }
        let renewed = kv
            .compare_and_set(LOCK, Some(json!(me)), &me)
            .ttl(LEASE)
            .await?;
        if !renewed {
            println!("{} {me}: lost the lock at step {step}, stopping", at());
            return Ok(());
        }
        println!("{} {me}: step {step} done, lease renewed", at());
    }
    println!(
        "{} {me}: job done, released: {}",
        at(),
        release(&kv, &me).await?
    );
    kv.set("job:7:done", &me).await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), KvError> {
    let kv = KvHandle::spawn();
    let start = Instant::now();
    let workers: Vec<_> = (1..=3)
        .map(|n| tokio::spawn(worker(kv.clone(), format!("worker-{n}"), start)))
        .collect();

    let finisher = kv.wait_for("job:7:done").await?;
    println!("job 7 finished by {}", finisher.as_str().unwrap_or("?"));
    for worker in workers {
        worker.abort(); // the losers are still polling for a lock nobody needs now
        let _ = worker.await;
    }
    Ok(())
}
