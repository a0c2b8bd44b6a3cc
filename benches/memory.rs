//! Memory per entry: a store of 1,000,000 small JSON objects against a plain
//! `HashMap<String, Value>` of the same data, counted by a counting global allocator. Prints its
//! numbers; run with `cargo bench -p ephemeral-kv-benches --bench memory`.

use ephemeral_kv_benches::workloads::{self as w, MEMORY_ENTRIES};

fn main() {
    let rt = w::runtime();
    let plain = rt.block_on(w::plain_bytes_per_entry(MEMORY_ENTRIES));
    let (store, kept) = rt.block_on(w::store_bytes_per_entry(MEMORY_ENTRIES, false));
    let (with_ttl, kept_ttl) = rt.block_on(w::store_bytes_per_entry(MEMORY_ENTRIES, true));
    drop((kept, kept_ttl));
    println!("memory per entry, {MEMORY_ENTRIES} entries of small JSON objects:");
    println!("  HashMap<String, Value>     {plain:>7.1} B");
    println!(
        "  ephemeral-kv, no TTL       {store:>7.1} B  ({:.2}x)",
        store / plain
    );
    println!(
        "  ephemeral-kv, all with TTL {with_ttl:>7.1} B  ({:.2}x)",
        with_ttl / plain
    );
}
