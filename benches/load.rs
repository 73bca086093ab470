//! Loopback throughput of each stack beside a bare axum Router, in one run.
//!
//! `scripts/load.sh` is the way to run it: it serves bare and a stack side by side, both
//! pinned to core 0 (`taskset`), loads each from core 1, and prints each server's CPU time per
//! request and requests per second relative to the bare server of the same window. Ratios,
//! not absolute figures, are what compare across machines (wall time moves by up to 2x here).
//!
//! ```text
//! load serve <stack> <port>                  # a server on 127.0.0.1:<port>, one thread
//! load drive <stack> <port> <secs> <conns>   # keep-alive HTTP/1.1 load; prints req/s
//! load header <stack>                        # the credential header, as `name: value`
//! ```
//!
//! `drive` is the fallback load generator; the script prefers `wrk` (far cheaper per request,
//! so the server and not the generator is what saturates) and feeds it `header`'s output.

#[path = "support/stacks.rs"]
mod stacks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

fn usage() -> ! {
    eprintln!(
        "usage: load serve <stack> <port> | load drive <stack> <port> <secs> <conns> | load header <stack>"
    );
    eprintln!("stacks: {:?}", stacks::STACKS);
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Criterion's `cargo bench` passes `--bench`; this target only runs through the script.
    if args.is_empty() || args[0].starts_with("--") {
        eprintln!("benches/load.rs runs through scripts/load.sh");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["header", stack] => {
            let Some((_, (name, value))) = stacks::build(stack) else {
                usage()
            };
            println!("{name}: {value}");
        }
        ["serve", stack, port] => {
            rt.block_on(serve(stack, port.parse().unwrap_or_else(|_| usage())))
        }
        ["drive", stack, port, secs, conns] => rt.block_on(drive(
            stack,
            port.parse().unwrap_or_else(|_| usage()),
            secs.parse().unwrap_or_else(|_| usage()),
            conns.parse().unwrap_or_else(|_| usage()),
        )),
        _ => usage(),
    }
}

async fn serve(stack: &str, port: u16) {
    let Some((router, _)) = stacks::build(stack) else {
        usage()
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
    .expect("serve");
}

async fn drive(stack: &str, port: u16, secs: f64, conns: usize) {
    let Some((_, (name, value))) = stacks::build(stack) else {
        usage()
    };
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    // A current-thread runtime: every connection shares the driver's one core.
    for _ in 0..conns {
        let (done, count, value) = (done.clone(), count.clone(), value.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            while !done.load(Ordering::Relaxed) {
                let req = http::Request::post("/mcp")
                    .header("host", "127.0.0.1")
                    .header(name, value.as_str())
                    .body(Empty::<bytes::Bytes>::new())
                    .expect("request");
                let res = sender.send_request(req).await.expect("response");
                assert_eq!(res.status(), 200, "the stack must let the request through");
                res.into_body().collect().await.expect("body");
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Warm up (connections, caches), then count for `secs`.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_count = count.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let n = count.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    println!("{:.0}", n as f64 / elapsed);
}
