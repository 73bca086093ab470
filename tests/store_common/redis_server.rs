//! Private `redis-server` processes for the tests that stop Redis, on free ports, killed when
//! dropped (also when a test panics): one server ([`RedisServer`]), or a Redis Cluster of
//! three masters and three replicas ([`RedisCluster`]). `redis-server` and `redis-cli` come
//! from `PATH`: missing, they are a skip locally and a failure when `CI=true`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{random_id, unreachable};

/// One `redis-server`, no persistence, on 127.0.0.1.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts `redis-server` on `port` with `extra` arguments and waits until it answers
    /// `PING`. `None` (skip, or a panic under `CI=true`) when the binary is missing.
    pub async fn start(port: u16, extra: &[String]) -> Option<Self> {
        let mut args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(["--save", "", "--appendonly", "no"].map(str::to_owned));
        args.extend_from_slice(extra);
        let mut server = Self {
            child: None,
            port,
            args,
        };
        if let Err(err) = server.spawn() {
            unreachable("redis-server (binary)", "PATH", &err);
            return None;
        }
        server.wait_until_up().await;
        Some(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no shutdown, no goodbye to clients) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed server again, same port and arguments (empty: no persistence).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().expect("redis-server started before");
        self.wait_until_up().await;
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    async fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if command(self.port, &["PING"]).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within 10 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nothing listens on now (bound to :0 and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A free port `p` whose Cluster bus port `p + 10000` is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// One command to the server on `port` over a fresh connection, as text lines.
pub async fn command(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(500)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(&mut conn).await
}

async fn text(port: u16, args: &[&str]) -> Option<String> {
    match command(port, args).await.ok()? {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        redis::Value::VerbatimString { text, .. } => Some(text),
        redis::Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    pub slots: Vec<(u16, u16)>,
}

fn parse_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let addr = f[1].split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let flags: Vec<&str> = f[2].split(',').collect();
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(ClusterNode {
                id: f[0].to_owned(),
                port,
                master: flags.contains(&"master"),
                failed: flags.iter().any(|f| f.starts_with("fail")),
                master_id: (f[3] != "-").then(|| f[3].to_owned()),
                slots,
            })
        })
        .collect()
}

/// Three masters and three replicas on free ports, in a temporary directory; every process
/// is killed and the directory removed when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts six `redis-server --cluster-enabled yes`, joins them with
    /// `redis-cli --cluster create --cluster-replicas 1` and waits until every node reports
    /// `cluster_state:ok` and every replica is in sync. Node timeout 1 s, so a failover
    /// takes a few seconds. `None` (a skip; a panic under `CI=true`) without the binaries.
    pub async fn start() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("tma-cluster-{}", random_id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..6 {
            let port = free_cluster_port();
            let args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                "1000",
                "--cluster-replica-validity-factor",
                "0",
                "--dir",
                cluster.dir.to_str().expect("a UTF-8 temp dir"),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            cluster.nodes.push(RedisServer::start(port, &args).await?);
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match create.status() {
            Ok(status) => assert!(status.success(), "redis-cli --cluster create failed"),
            Err(err) => {
                unreachable("redis-cli (binary)", "PATH", &err);
                return None;
            }
        }
        cluster.wait_healthy(Duration::from_secs(60)).await;
        Some(cluster)
    }

    /// The seed nodes as one `redis+cluster://` URL (every node, masters and replicas).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The seed nodes, one `redis://` URL each.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    fn living(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.iter().filter(|n| n.is_running()).map(|n| n.port)
    }

    /// `CLUSTER NODES` as seen by a living node.
    pub async fn topology(&self) -> Vec<ClusterNode> {
        for port in self.living() {
            if let Some(text) = text(port, &["CLUSTER", "NODES"]).await {
                return parse_nodes(&text);
            }
        }
        panic!("no living cluster node answers CLUSTER NODES");
    }

    /// The slot of `key` (hash tag applied).
    pub async fn slot(&self, key: &str) -> u16 {
        let port = self.living().next().expect("a living node");
        match command(port, &["CLUSTER", "KEYSLOT", key]).await.unwrap() {
            redis::Value::Int(n) => u16::try_from(n).unwrap(),
            other => panic!("CLUSTER KEYSLOT answered {other:?}"),
        }
    }

    /// The master serving `slot` now (not flagged failed).
    pub async fn master_of_slot(&self, slot: u16) -> Option<ClusterNode> {
        self.topology().await.into_iter().find(|n| {
            n.master && !n.failed && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
        })
    }

    /// The first key matching `pattern` on a living master, with that master's port.
    pub async fn find_key(&self, pattern: &str) -> Option<(u16, String)> {
        for node in self
            .topology()
            .await
            .iter()
            .filter(|n| n.master && !n.failed)
        {
            if let Ok(redis::Value::Array(keys)) = command(node.port, &["KEYS", pattern]).await {
                if let Some(redis::Value::BulkString(key)) = keys.into_iter().next() {
                    return Some((node.port, String::from_utf8(key).unwrap()));
                }
            }
        }
        None
    }

    /// Waits until every replica of the master on `port` has received everything the master
    /// had written when this was called (so a failover loses none of it).
    pub async fn wait_replicated(&self, port: u16) {
        let field = |info: &str, name: &str| -> Option<u64> {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':')?.parse().ok())
        };
        let info = text(port, &["INFO", "replication"]).await.unwrap();
        let written = field(&info, "master_repl_offset").unwrap();
        let master = self
            .topology()
            .await
            .into_iter()
            .find(|n| n.port == port)
            .unwrap();
        let replicas: Vec<u16> = self
            .topology()
            .await
            .into_iter()
            .filter(|n| n.master_id.as_deref() == Some(master.id.as_str()))
            .map(|n| n.port)
            .collect();
        assert!(!replicas.is_empty(), "master {port} has no replica");
        let deadline = Instant::now() + Duration::from_secs(10);
        for replica in replicas {
            loop {
                let info = text(replica, &["INFO", "replication"])
                    .await
                    .unwrap_or_default();
                if field(&info, "slave_repl_offset").is_some_and(|o| o >= written) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {replica} did not catch up"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Kills the node on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        node.kill();
    }

    /// Waits until every living node says `cluster_state:ok`, every slot has a living
    /// master, and every living replica's link to its master is up.
    pub async fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.is_healthy().await {
            assert!(
                Instant::now() < deadline,
                "cluster not healthy within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn is_healthy(&self) -> bool {
        let living: Vec<u16> = self.living().collect();
        for &port in &living {
            let Some(info) = text(port, &["CLUSTER", "INFO"]).await else {
                return false;
            };
            if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                return false;
            }
            let Some(replication) = text(port, &["INFO", "replication"]).await else {
                return false;
            };
            let replica = replication.lines().any(|l| l.trim() == "role:slave");
            if replica
                && !replication
                    .lines()
                    .any(|l| l.trim() == "master_link_status:up")
            {
                return false;
            }
        }
        let topology = self.topology().await;
        let covered: u32 = topology
            .iter()
            .filter(|n| n.master && !n.failed && living.contains(&n.port))
            .flat_map(|n| n.slots.iter())
            .map(|&(a, b)| u32::from(b - a) + 1)
            .sum();
        covered == 16_384
    }

    /// Kills every node and removes the directory (also done on drop).
    pub fn stop(self) {}
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
