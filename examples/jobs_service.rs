//! A jobs web service on the store: `POST /jobs` queues a job and answers its id, `GET
//! /jobs/{id}` waits for its result; 4 workers take jobs with a blocking pop and write results.
//!
//! Run it on the in-process store, or on Redis with `--redis URL`:
//!
//! ```text
//! cargo run --release --features redis --example jobs_service -- --listen 127.0.0.1:3000
//! cargo run --release --features redis --example jobs_service -- --redis redis://127.0.0.1:6379
//! ```
//!
//! and load it with `wrk` and the script beside this file, which POSTs a job, then GETs the
//! result of a job it POSTed (docs/redis.md, "Numbers", has the figures):
//!
//! ```text
//! wrk -t2 -c50 -d10s --latency -s examples/jobs_service.lua http://127.0.0.1:3000
//! ```
//!
//! What it does, with the calls:
//! - `POST /jobs` (a JSON body): `incr("jobs:next")` gives the id, `list_push("jobs:inbox",
//!   [{"id", "job"}])` queues it; the answer is the id.
//! - 4 workers, each on a handle of its own (on Redis: its own connection, as 4 processes would
//!   be), loop on `list_pop_front("jobs:inbox", 1).wait(1 s)`, and write `jobs:<id>:result` with
//!   a TTL of a minute.
//! - `GET /jobs/{id}`: `wait_for("jobs:<id>:result")`, bounded by 5 s (then `504`).

use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ephemeral_kv::{KvError, KvHandle};
use serde_json::{json, Value};

type BoxError = Box<dyn Error + Send + Sync>;

/// The list the jobs wait in.
const INBOX: &str = "jobs:inbox";
/// Workers taking jobs.
const WORKERS: usize = 4;
/// How long a `GET` waits for a result.
const RESULT_WAIT: Duration = Duration::from_secs(5);
/// How long a result is kept.
const RESULT_TTL: Duration = Duration::from_secs(60);

/// A store handle on the backend the command line chose.
async fn open(redis: Option<&str>) -> Result<KvHandle, KvError> {
    let builder = KvHandle::builder().prefix("jobs-service:");
    match redis {
        Some(url) => builder.redis(url).await,
        None => Ok(builder.spawn()),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut listen: SocketAddr = "127.0.0.1:3000".parse()?;
    let mut redis = None;
    let mut handles = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(address)) => listen = address.parse()?,
            ("--redis", Some(url)) => redis = Some(url),
            ("--handles", Some(n)) => handles = n.parse::<usize>()?.max(1),
            _ => {
                return Err(
                    "usage: jobs_service [--listen ADDRESS] [--redis URL] [--handles N]".into(),
                )
            }
        }
    }
    let kv = open(redis.as_deref()).await?;
    for worker in 0..WORKERS {
        // In-process there is one store, so the workers share its handle; on Redis each opens
        // its own connection.
        let handle = match redis {
            Some(_) => open(redis.as_deref()).await?,
            None => kv.clone(),
        };
        tokio::spawn(work(handle, worker));
    }
    // The requests' handles: one, or (`--handles N`, on Redis) N connections taken in turn.
    let mut pool = vec![kv.clone()];
    for _ in 1..handles {
        pool.push(match redis {
            Some(_) => open(redis.as_deref()).await?,
            None => kv.clone(),
        });
    }
    let pool = Pool {
        handles: Arc::new(pool),
        next: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/jobs", post(submit))
        .route("/jobs/{id}", get(result))
        .with_state(pool);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let backend = redis.as_deref().unwrap_or("in-process");
    println!("jobs_service on http://{listen} ({backend}), {WORKERS} workers");
    axum::serve(listener, app).await?;
    Ok(())
}

/// The handles the requests use, in turn.
#[derive(Clone)]
struct Pool {
    handles: Arc<Vec<KvHandle>>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    fn handle(&self) -> &KvHandle {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.handles[n % self.handles.len()]
    }
}

/// `POST /jobs`: queues the body as a job and answers `{"id": n}`.
async fn submit(
    State(pool): State<Pool>,
    Json(job): Json<Value>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let kv = pool.handle();
    let id = kv.incr("jobs:next", 1).await.map_err(unavailable)?;
    kv.list_push(INBOX, [json!({"id": id, "job": job})])
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({"id": id})))
}

/// `GET /jobs/{id}`: the job's result once a worker wrote it, or `504` after [`RESULT_WAIT`].
async fn result(
    State(pool): State<Pool>,
    Path(id): Path<u64>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let kv = pool.handle();
    let key = format!("jobs:{id}:result");
    match tokio::time::timeout(RESULT_WAIT, kv.wait_for(&key)).await {
        Ok(Ok(value)) => Ok(Json(Value::clone(&value))),
        Ok(Err(error)) => Err(unavailable(error)),
        Err(_) => Err((
            StatusCode::GATEWAY_TIMEOUT,
            format!("no result for job {id} yet"),
        )),
    }
}

/// One worker: takes one job at a time and writes its result.
async fn work(kv: KvHandle, worker: usize) {
    loop {
        let jobs = match kv
            .list_pop_front(INBOX, 1)
            .wait(Duration::from_secs(1))
            .await
        {
            Ok(jobs) => jobs,
            Err(KvError::Closed | KvError::OwnerGone) => return,
            Err(error) => {
                eprintln!("worker {worker}: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        for job in jobs {
            let id = job["id"].as_u64().unwrap_or_default();
            // The "work": the size of the job's text.
            let answer = json!({"id": id, "worker": worker, "size": job["job"].to_string().len()});
            if let Err(error) = kv
                .set(format!("jobs:{id}:result"), answer)
                .ttl(RESULT_TTL)
                .await
            {
                eprintln!("worker {worker}: job {id}: {error}");
            }
        }
    }
}

/// A store error as `503` with its message.
fn unavailable(error: KvError) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}
