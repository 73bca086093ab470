//! Redis Cluster (feature `redis-cluster`): the node list a `redis+cluster://` URL names, and
//! the connection to it.

use std::time::Duration;

use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;

use super::{map_err, StoreError};

/// Splits `redis+cluster://[user:password@]h1:p1,h2:p2[/db][?query]` (or `rediss+cluster://`)
/// into one `redis://` (`rediss://`) URL per seed node, each with the same credentials, path
/// and query. `None` if `url` is not a cluster URL; an error if it names no node. Errors never
/// contain the URL: it may carry a password.
pub(super) fn node_urls(url: &str) -> Option<Result<Vec<String>, StoreError>> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return None,
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let mut nodes = Vec::new();
    for host in hosts.split(',').map(str::trim) {
        if host.is_empty() {
            return Some(Err(StoreError::Config(
                "Redis Cluster URL has an empty node (expected host:port,host:port)".into(),
            )));
        }
        nodes.push(match userinfo {
            Some(userinfo) => format!("{scheme}://{userinfo}@{host}{tail}"),
            None => format!("{scheme}://{host}{tail}"),
        });
    }
    Some(Ok(nodes))
}

/// Connects to the cluster through any of `nodes` (seed nodes: the rest of the topology is
/// discovered), each attempt bounded by `connection_timeout`, each command (with its
/// redirections and retries after a failover) by `response_timeout`.
pub(super) async fn connect(
    nodes: &[String],
    response_timeout: Duration,
    connection_timeout: Duration,
) -> Result<ClusterConnection, StoreError> {
    if nodes.is_empty() {
        return Err(StoreError::Config(
            "Redis Cluster needs at least one node".into(),
        ));
    }
    let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
        .response_timeout(response_timeout)
        .connection_timeout(connection_timeout)
        .build()
        // A node URL may carry a password: report the failure without it.
        .map_err(|_| StoreError::Config("invalid Redis Cluster node URL".into()))?;
    client.get_async_connection().await.map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(url: &str) -> Vec<String> {
        node_urls(url).unwrap().unwrap()
    }

    #[test]
    fn one_url_per_node_with_the_same_credentials_and_path() {
        assert_eq!(
            nodes("redis+cluster://a:7000,b:7001"),
            ["redis://a:7000", "redis://b:7001"]
        );
        assert_eq!(
            nodes("rediss+cluster://u:p%40ss@a:7000, b:7001/0?protocol=3"),
            [
                "rediss://u:p%40ss@a:7000/0?protocol=3",
                "rediss://u:p%40ss@b:7001/0?protocol=3"
            ]
        );
        assert_eq!(nodes("REDIS+CLUSTER://:pw@a:1"), ["redis://:pw@a:1"]);
    }

    #[test]
    fn other_schemes_are_not_cluster_urls() {
        assert!(node_urls("redis://a:6379").is_none());
        assert!(node_urls("redis+unix:///tmp/r.sock").is_none());
        assert!(node_urls("not a url").is_none());
    }

    #[test]
    fn an_empty_node_is_a_config_error_without_the_url() {
        for url in ["redis+cluster://", "redis+cluster://:secret@a:1,,b:2"] {
            let err = node_urls(url).unwrap().unwrap_err();
            assert!(matches!(err, StoreError::Config(_)), "{err:?}");
            assert!(!err.to_string().contains("secret"));
        }
    }
}
