//! A fixed-window rate limiter: at most 5 requests per client per second, with `incr` and a TTL.
//!
//! Run it with `cargo run --example rate_limit`.
//!
//! Each request does one `incr("rate:<client>", 1).ttl(1 s)`. The TTL is set only by the call that
//! creates the counter, so the window starts at a client's first request and is not pushed back by
//! later ones; when it expires, the next request starts a new window at 1. The check and the count
//! are one atomic command, so concurrent requests can never both slip under the limit.
//! Time is tokio's paused clock, so the run takes no real time.

use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle, Ttl};
use tokio::time::{sleep, Instant};

const LIMIT: i64 = 5;
const WINDOW: Duration = Duration::from_secs(1);

/// Counts one request from `client`; `Ok(None)` if allowed, `Ok(Some(wait))` if refused.
async fn check(kv: &KvHandle, client: &str) -> Result<Option<Duration>, KvError> {
    let key = format!("rate:{client}");
    let count = kv.incr(&key, 1).ttl(WINDOW).await?;
    if count <= LIMIT {
        return Ok(None);
    }
    Ok(Some(match kv.ttl(&key).await? {
        Ttl::Expires(left) => left,
        Ttl::Missing | Ttl::NoExpiry => Duration::ZERO,
    }))
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), KvError> {
    let kv = KvHandle::spawn();
    let start = Instant::now();

    // A steady client at 4 requests per second and a bursty one at 10 per second, for 2.5 s.
    let clients = [("steady", 250), ("bursty", 100)].map(|(client, every_ms)| {
        let kv = kv.clone();
        tokio::spawn(async move {
            let (mut allowed, mut refused) = (0, 0);
            while start.elapsed() < Duration::from_millis(2500) {
                match check(&kv, client).await? {
                    None => allowed += 1,
                    Some(wait) => {
                        refused += 1;
                        if refused % 5 == 1 {
                            let at = start.elapsed().as_secs_f64();
                            println!("{at:>4.1}s {client}: refused, retry in {wait:?}");
                        }
                    }
                }
                sleep(Duration::from_millis(every_ms)).await;
            }
            println!("{client}: {allowed} allowed, {refused} refused");
            Ok::<_, KvError>((allowed, refused))
        })
    });
    for client in clients {
        client.await.expect("client task")?;
    }
    let stats = kv.stats().await?;
    println!(
        "store: {} commands, {} windows expired",
        stats.commands, stats.expirations
    );
    Ok(())
}
