//! Connections are bounded: a client that sends nothing, one that trickles its request head
//! (slow loris) and a kept-alive connection left idle are closed after the configured time,
//! while a POS on another connection is served; so is an HTTP/2 connection with no request in
//! flight, though it answers pings; a connection beyond `server.max_connections` is closed at
//! once, and one fits again when another closes; 10,000 silent sockets keep no POS out.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::db::TestDb;
use crate::common::hub::{Options, TestHub};

fn addr(hub: &TestHub) -> String {
    hub.url.trim_start_matches("http://").to_owned()
}

/// Reads until the hub closes the connection (EOF or reset); how long that took, or `None`
/// if it was still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + within).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue, // a response (e.g. 408) before the close
        }
    }
}

async fn pos_is_served(hub: &TestHub) {
    let code = hub.new_code(100).await;
    assert!(!code.is_empty());
}

fn short_timeouts() -> Options {
    Options {
        server: "first_bytes_timeout = \"400ms\"\nheader_read_timeout = \"400ms\"\n".into(),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_that_sends_nothing_is_closed() {
    let hub = TestHub::start(TestDb::sqlite().await, short_timeouts()).await;
    let mut silent = TcpStream::connect(addr(&hub)).await.expect("connects");
    let connected = Instant::now();
    pos_is_served(&hub).await;
    closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("closed by the hub");
    let took = connected.elapsed();
    assert!(
        took >= Duration::from_millis(350),
        "not before its time: {took:?}"
    );
    pos_is_served(&hub).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_loris_is_closed_while_a_pos_is_served() {
    let hub = TestHub::start(TestDb::sqlite().await, short_timeouts()).await;
    let mut loris = TcpStream::connect(addr(&hub)).await.expect("connects");
    loris
        .write_all(b"POST /qr/v1/qrCodes HTTP/1.1\r\nHost: hub\r\n")
        .await
        .expect("writes");
    // One header byte every 100 ms: never a whole head.
    let trickle = tokio::spawn(async move {
        let started = Instant::now();
        for _ in 0..100 {
            if loris.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut buf = [0u8; 1024];
        // Whatever is left: the hub must have closed it by now.
        let open_after = loop {
            match tokio::time::timeout(Duration::from_millis(50), loris.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break false,
                Ok(Ok(_)) => continue,
                Err(_) => break true,
            }
        };
        (started.elapsed(), open_after)
    });
    pos_is_served(&hub).await;
    let (took, still_open) = trickle.await.expect("task");
    assert!(
        !still_open,
        "the slow loris is still connected after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    pos_is_served(&hub).await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_alive_connection_left_idle_is_closed() {
    let hub = TestHub::start(TestDb::sqlite().await, short_timeouts()).await;
    let mut idle = TcpStream::connect(addr(&hub)).await.expect("connects");
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .expect("writes");
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.expect("a response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let took = closed_within(&mut idle, Duration::from_secs(5))
        .await
        .expect("closed by the hub once idle");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_beyond_the_cap_is_closed_at_once() {
    let hub = TestHub::start(
        TestDb::sqlite().await,
        Options {
            server: "max_connections = 2\n".into(),
            ..Options::default()
        },
    )
    .await;
    // Two connections hold both places (silent, within the default 10 s first-bytes time).
    let first = TcpStream::connect(addr(&hub)).await.expect("connects");
    let _second = TcpStream::connect(addr(&hub)).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr(&hub))
        .await
        .expect("the kernel accepts");
    let _ = third
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await;
    let took = closed_within(&mut third, Duration::from_secs(2))
        .await
        .expect("the third connection is closed at once");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // One place frees: a POS is served again.
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = reqwest::Client::new()
        .get(format!("{}/health/live", hub.url))
        .send()
        .await
        .expect("served once a place is free")
        .status();
    assert_eq!(status, 200);
    hub.stop().await;
}

/// HTTP/2 has no header-read timer between requests: a client that finishes its request and
/// then only answers the hub's pings (as hyper's client does) must still be closed once idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_http2_connection_left_idle_is_closed() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let hub = TestHub::start(TestDb::sqlite().await, short_timeouts()).await;
    let tcp = TcpStream::connect(addr(&hub)).await.expect("connects");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("an HTTP/2 handshake (prior knowledge)");
    let ended = tokio::spawn(async move {
        let _ = connection.await;
        Instant::now()
    });
    let request = hyper::Request::get(format!("{}/health/live", hub.url))
        .body(Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("served");
    assert_eq!(response.status(), 200);
    drop(response);
    let answered = Instant::now();
    let closed_at = tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the hub closes an HTTP/2 connection left idle")
        .expect("task");
    assert!(
        closed_at >= answered + Duration::from_millis(350),
        "closed {:?} after the answer: before its time",
        closed_at - answered
    );
    pos_is_served(&hub).await;
    hub.stop().await;
}

/// 10,000 sockets that connect and say nothing keep no POS out, and none of them stays. The
/// hub runs as its own process, so that each end of the sockets has its own budget of open
/// files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_idle_sockets_are_closed_while_a_pos_is_served() {
    use crate::common::hub::{config_toml, start_simulator, Client};
    use crate::common::process::{free_port, write_config, HubProcess};

    const IDLE: usize = 10_000;
    let db = TestDb::sqlite().await;
    let sim = start_simulator().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let options = Options {
        server: "first_bytes_timeout = \"3s\"\nheader_read_timeout = \"3s\"\n".into(),
        ..Options::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "qrhub.toml",
        &config_toml(&db.url, &sim.base_url(), &options),
        port,
    );
    let _process = HubProcess::start(&config, &url).await;
    let pos = Client::new(url.clone());

    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("an idle socket connects"),
        );
    }
    // Every one of them open (or being closed for its silence), and a POS is served.
    let code = pos.new_code(100).await;
    assert!(!code.is_empty());

    let waits = idle
        .into_iter()
        .map(|mut socket| async move { closed_within(&mut socket, Duration::from_secs(60)).await });
    let closed = futures::future::join_all(waits).await;
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        open, 0,
        "{open} of {IDLE} idle sockets still open after 60 s"
    );
    let all_closed = opened.elapsed();
    assert!(
        all_closed >= Duration::from_millis(2_900),
        "closed before their time ({all_closed:?})"
    );
    let code = pos.new_code(100).await;
    assert!(!code.is_empty(), "a POS is served once they are gone");
}
