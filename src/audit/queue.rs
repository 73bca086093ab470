//! Sinks behind a bounded queue: [`ChannelSink`] (events for your own consumer) and
//! [`JsonLinesSink`] (one JSON object per line to a writer, on its own thread).

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use super::event::AuditEvent;
use super::sink::AuditSink;

/// A bounded queue that never blocks the sender: a full queue drops the event and counts it.
#[derive(Clone)]
struct Queue {
    tx: SyncSender<AuditEvent>,
    dropped: Arc<AtomicU64>,
}

impl Queue {
    fn bounded(capacity: usize) -> (Self, Receiver<AuditEvent>) {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let queue = Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (queue, rx)
    }

    fn push(&self, event: AuditEvent) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                crate::metrics::audit_dropped();
            }
        }
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Audit events for a consumer of your own (a database writer, a SIEM forwarder): a bounded
/// queue; when it is full, events are dropped and counted ([`dropped`](Self::dropped)),
/// never waited for.
///
/// ```
/// use tower_mcp_auth::audit::{AuditLayer, ChannelSink};
///
/// let (sink, events) = ChannelSink::bounded(10_000);
/// std::thread::spawn(move || {
///     while let Some(event) = events.recv() {
///         println!("{}", event.to_json());
///     }
/// });
/// let layer = AuditLayer::new(sink);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct ChannelSink {
    queue: Queue,
}

impl ChannelSink {
    /// A sink holding at most `capacity` events not yet received, and its receiving end.
    ///
    /// ```
    /// let (sink, events) = tower_mcp_auth::audit::ChannelSink::bounded(1024);
    /// assert_eq!(sink.dropped(), 0);
    /// assert!(events.try_recv().is_none());
    /// ```
    pub fn bounded(capacity: usize) -> (Self, AuditReceiver) {
        let (queue, rx) = Queue::bounded(capacity);
        (Self { queue }, AuditReceiver { rx })
    }

    /// How many events were dropped because the queue was full (or the receiver gone).
    ///
    /// ```
    /// let (sink, _events) = tower_mcp_auth::audit::ChannelSink::bounded(1);
    /// assert_eq!(sink.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }
}

impl AuditSink for ChannelSink {
    fn record(&self, event: AuditEvent) {
        self.queue.push(event);
    }
}

impl fmt::Debug for ChannelSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSink")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// The receiving end of a [`ChannelSink`]. Blocking reads: drain it on a thread of its own
/// (or `tokio::task::spawn_blocking`), never on an async executor's worker.
///
/// ```
/// let (sink, events) = tower_mcp_auth::audit::ChannelSink::bounded(1024);
/// let consumer = std::thread::spawn(move || {
///     let mut n = 0;
///     while let Some(_event) = events.recv() {
///         n += 1;
///     }
///     n
/// });
/// drop(sink); // the consumer ends once every sink is gone
/// assert_eq!(consumer.join().unwrap(), 0);
/// ```
pub struct AuditReceiver {
    rx: Receiver<AuditEvent>,
}

impl AuditReceiver {
    /// The next event, waiting for one; `None` once every sink is dropped and the queue is
    /// empty.
    ///
    /// ```
    /// let (sink, events) = tower_mcp_auth::audit::ChannelSink::bounded(8);
    /// drop(sink);
    /// assert!(events.recv().is_none());
    /// ```
    pub fn recv(&self) -> Option<AuditEvent> {
        self.rx.recv().ok()
    }

    /// The next event if one is queued.
    ///
    /// ```
    /// let (_sink, events) = tower_mcp_auth::audit::ChannelSink::bounded(8);
    /// assert!(events.try_recv().is_none());
    /// ```
    pub fn try_recv(&self) -> Option<AuditEvent> {
        self.rx.try_recv().ok()
    }

    /// The next event, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (_sink, events) = tower_mcp_auth::audit::ChannelSink::bounded(8);
    /// assert!(events.recv_timeout(Duration::from_millis(1)).is_none());
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Option<AuditEvent> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl fmt::Debug for AuditReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditReceiver")
    }
}

/// Writes each event as one JSON object per line ([`AuditEvent::to_json`]) to a writer (a
/// file, stdout), from a thread of its own behind a bounded queue: a slow disk never holds up
/// a request; when the queue is full, events are dropped and counted
/// ([`dropped`](Self::dropped)). The writer is flushed whenever the queue runs empty.
///
/// ```
/// use tower_mcp_auth::audit::{AuditLayer, JsonLinesSink};
///
/// let file = std::fs::File::create(std::env::temp_dir().join("mcp-audit.jsonl")).unwrap();
/// let layer = AuditLayer::new(JsonLinesSink::new(file, 10_000));
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct JsonLinesSink {
    queue: Queue,
}

impl JsonLinesSink {
    /// Starts the writer thread; at most `capacity` events wait for it. The thread ends (and
    /// flushes) when the last clone of the sink is dropped.
    ///
    /// ```
    /// let sink = tower_mcp_auth::audit::JsonLinesSink::new(std::io::sink(), 100);
    /// assert_eq!(sink.dropped(), 0);
    /// ```
    pub fn new<W: Write + Send + 'static>(writer: W, capacity: usize) -> Self {
        let (queue, rx) = Queue::bounded(capacity);
        let spawned = std::thread::Builder::new()
            .name("mcp-audit-writer".to_owned())
            .spawn(move || write_lines(rx, writer));
        if let Err(e) = spawned {
            // No thread, no writer: every event will be counted as dropped.
            tracing::error!(error = %e, "audit writer thread could not start");
        }
        Self { queue }
    }

    /// How many events were dropped because the queue was full (or the writer gone).
    ///
    /// ```
    /// let sink = tower_mcp_auth::audit::JsonLinesSink::new(std::io::sink(), 1);
    /// assert_eq!(sink.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }
}

fn write_lines<W: Write>(rx: Receiver<AuditEvent>, writer: W) {
    let mut out = std::io::BufWriter::new(writer);
    let write = |event: AuditEvent, out: &mut std::io::BufWriter<W>| {
        let ok = serde_json::to_writer(&mut *out, &event).is_ok() && out.write_all(b"\n").is_ok();
        if !ok {
            tracing::warn!("audit line could not be written");
        }
    };
    loop {
        match rx.try_recv() {
            Ok(event) => write(event, &mut out),
            Err(TryRecvError::Empty) => {
                let _ = out.flush();
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(event) => write(event, &mut out),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        }
    }
    let _ = out.flush();
}

impl AuditSink for JsonLinesSink {
    fn record(&self, event: AuditEvent) {
        self.queue.push(event);
    }
}

impl fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}
