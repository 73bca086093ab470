//! The one connection type every [`RedisStore`](super::RedisStore) operation goes through: a
//! single server's reconnecting [`ConnectionManager`] or, with feature `redis-cluster`, a
//! Cluster connection that routes each command to the node owning its key's slot.

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::{Cmd, Pipeline, RedisFuture, Value};

/// Either backend; cloning is cheap (both are handles on a shared multiplexed connection).
#[derive(Clone)]
pub(super) enum Connection {
    /// One Redis server (or a proxy in front of several).
    Single(ConnectionManager),
    /// A Redis Cluster: slot map refreshed on `MOVED` / `ASK` and after a failover.
    #[cfg(feature = "redis-cluster")]
    Cluster(::redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
