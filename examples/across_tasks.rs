//! Producers and consumers sharing an inbox through cloned handles.
//!
//! Run it with `cargo run --example across_tasks`.
//!
//! Four producers append messages with unique ids; two consumers drain the inbox with
//! `list_pop_all`. Every message is delivered exactly once, because each append and each pop is one
//! atomic command on the store's owner task.

use std::time::Duration;

use ephemeral_kv::{KvError, KvHandle};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    id: String,
    body: String,
}

#[tokio::main]
async fn main() -> Result<(), KvError> {
    let kv = KvHandle::builder().prefix("demo:").spawn();
    let inbox = "inbox";

    let producers: Vec<_> = (0..4)
        .map(|p| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for n in 0..25 {
                    let message = Message {
                        id: format!("p{p}-{n}"),
                        body: format!("hello #{n} from producer {p}"),
                    };
                    kv.list_append_unique(inbox, [message]).await?;
                    tokio::task::yield_now().await;
                }
                Ok::<_, KvError>(())
            })
        })
        .collect();

    let consumers: Vec<_> = (0..2)
        .map(|c| {
            let kv = kv.clone();
            tokio::spawn(async move {
                let mut received = 0;
                // Stop after the inbox has stayed empty for a while.
                let mut idle_rounds = 0;
                while idle_rounds < 50 {
                    let batch = kv.list_pop_all(inbox).await?;
                    if batch.is_empty() {
                        idle_rounds += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    idle_rounds = 0;
                    received += batch.len();
                    let first: Message = serde_json::from_value(batch[0].clone())
                        .expect("producers only send messages");
                    println!(
                        "consumer {c} took {} messages, first: {}",
                        batch.len(),
                        first.body
                    );
                }
                Ok::<_, KvError>(received)
            })
        })
        .collect();

    for producer in producers {
        producer.await.expect("producer panicked")?;
    }
    let mut total = 0;
    for consumer in consumers {
        total += consumer.await.expect("consumer panicked")?;
    }
    total += kv.list_pop_all(inbox).await?.len();
    println!("delivered {total} of 100 messages, each exactly once");
    assert_eq!(total, 100);
    Ok(())
}
