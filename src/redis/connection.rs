//! The connections the Redis executor runs commands on, behind one type, so that one owner loop
//! and one [`plan`](super::exec::plan) serve a single server and a Redis Cluster.
//!
//! - [`Connection::Server`]: one server, through the `redis` crate's `ConnectionManager` (which
//!   reconnects on the next call after a failure).
//! - [`Connection::Cluster`]: a Redis Cluster, through the `redis` crate's async
//!   `ClusterConnection`, which routes each command (and each pipeline, whose commands must then
//!   share a hash slot: [`slots`](super::slots) splits batches) to the primary of its slot. It is
//!   built with no retries (see `slots::cluster_client`), so that it never sends a command twice.
//! - [`Connection::Node`]: one server or one node of a cluster, on a plain multiplexed connection
//!   that never reconnects or follows a redirection by itself: what `WATCH`/`MULTI`/`EXEC` need
//!   on a cluster (a silent reconnection or a redirection between `WATCH` and `EXEC` would run
//!   the `EXEC` unwatched), and what the change feed reads a single server's stream on.

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A connection of the Redis executor (see the module docs).
#[derive(Clone)]
pub(crate) enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
    Node(MultiplexedConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Server(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
            Connection::Node(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Node(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
            Connection::Node(connection) => connection.get_db(),
        }
    }
}
