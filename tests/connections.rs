//! Connection robustness against the real binary on loopback: a slowloris beside a legitimate
//! chat, a stalled body, idle keep-alive, the connection cap, HTTP/2 rapid reset, and what must
//! keep working (long streams, requests waiting for a model, trickled bodies, big heads,
//! vanishing streams). Every count and time here is bounded.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::file_limit::raise_own_file_limit;
use support::http::{get, post_json, read_answer, read_head, Answer};
use support::metrics::Scrape;
use support::server::Porten;

/// Held by the tests that load both cores (SmolLM2, hundreds of sockets or threads), so that a
/// time bound in one is not spent by another.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Half a request head: what a slowloris sends before it stops.
const HALF_HEAD: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-a: ";

/// A served model and its directory, which lives as long as the server.
struct Served {
    server: Porten,
    _dir: tempfile::TempDir,
}

/// `porten serve` with `[server.connections]` set to `limits` (TOML lines) and one model:
/// the tiny random chat model, or SmolLM2 with `max_concurrency = 1`; `file_limit` is the
/// open-file limit it starts with (soft, hard).
fn serve(limits: &str, model: Model, file_limit: Option<(u64, u64)>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let (path, extra): (PathBuf, &str) = match model {
        Model::Tiny => {
            let path = dir.path().join("tiny");
            support::fixtures::write_tiny_chat_model(&path);
            (path, "")
        }
        Model::SmolLm2 => (support::smollm2(), "max_concurrency = 1\n"),
    };
    let config = dir.path().join("porten.toml");
    std::fs::write(
        &config,
        format!(
            "[server.connections]\n{limits}\n\n[[models]]\nid = \"m\"\npath = \"{}\"\n{extra}",
            path.display()
        ),
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let server = match file_limit {
        Some((soft, hard)) => Porten::start_with_file_limit(&args, soft, hard),
        None => Porten::start(&args),
    };
    server.wait_ready();
    Served { server, _dir: dir }
}

#[derive(Clone, Copy)]
enum Model {
    Tiny,
    SmolLm2,
}

fn chat_body(max_tokens: u64, stream: bool) -> Value {
    json!({"model": "m", "max_tokens": max_tokens, "temperature": 0, "stream": stream,
           "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}]})
}

fn chat(addr: SocketAddr) -> Answer {
    post_json(addr, "/v1/chat/completions", &chat_body(2, false), &[])
}

/// Whether the server has closed `stream` by `deadline`: EOF or a reset, not a read timeout.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A refusal's 503, say: keep reading until the close.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Reads a response with a `content-length` body from a kept-alive connection.
fn read_sized(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let (status, headers) = read_head(reader);
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("a sized body");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Started under a file limit of 256 that it cannot raise, porten caps itself at 192
/// connections; 400 half-sent heads neither keep a chat from being answered within 2 s nor
/// outlive the head timeout.
#[test]
fn a_slowloris_does_not_keep_a_chat_out_and_is_dropped_within_the_head_timeout() {
    let _heavy = heavy();
    raise_own_file_limit(1024);
    let served = serve("head_timeout_secs = 3", Model::Tiny, Some((256, 256)));
    let addr = served.server.addr;
    assert!(
        served.server.log().contains("max_connections=192"),
        "{}",
        served.server.log()
    );
    assert_eq!(chat(addr).status, 200, "the model is warm");

    let opened = Instant::now();
    let mut hostile: Vec<TcpStream> = (0..400)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(HALF_HEAD).unwrap();
            stream
        })
        .collect();
    let asked = Instant::now();
    let answer = chat(addr);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "answered in {:?}",
        asked.elapsed()
    );

    let deadline = opened + Duration::from_secs(3 + 3);
    let still_open = hostile
        .iter_mut()
        .map(|s| closed_by(s, deadline))
        .filter(|closed| !closed)
        .count();
    assert_eq!(
        still_open, 0,
        "half-open connections left after the head timeout"
    );

    let scrape = Scrape::of(&served.server);
    let closed = |reason| {
        scrape.value(
            "porten_connections_closed_total",
            &[("porten_connection_close_reason", reason)],
        )
    };
    assert!(
        closed("head_timeout") > 0.0,
        "some waited out their head timeout"
    );
    assert!(closed("displaced") > 0.0, "the cap made room by displacing");
    assert!(
        scrape.value("porten_connections_open", &[]) <= 2.0,
        "only the scrape's own connection (and the chat's, closing) remain"
    );
}

/// Started under the common soft limit of 1,024, porten raises it to the hard limit, says so,
/// and sizes its connection cap from what it got.
#[test]
fn the_soft_file_limit_is_raised_to_the_hard_one_and_sizes_the_cap() {
    let served = serve("", Model::Tiny, Some((256, 2048)));
    let log = served.server.log();
    assert!(log.contains("limit=2048 raised_from=256"), "{log}");
    assert!(log.contains("max_connections=1536"), "{log}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", served.server.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["2048", "2048"],
        "{open_files}"
    );
}

/// A body that stops arriving gets 408 in the client's dialect, and its connection is closed.
#[test]
fn a_stalled_body_is_answered_408_and_closed() {
    let served = serve("body_timeout_secs = 2", Model::Tiny, None);
    let addr = served.server.addr;
    for (path, check) in [
        ("/v1/chat/completions", "request_timeout"),
        ("/v1/messages", "invalid_request_error"),
    ] {
        let mut stream = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: 200\r\n\r\n{{\"model\":"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let (status, headers, body) = read_sized(&mut reader);
        assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
        assert_eq!(header(&headers, "connection"), Some("close"));
        let error: Value = serde_json::from_slice(&body).unwrap();
        let kind = if path == "/v1/messages" {
            &error["error"]["type"]
        } else {
            &error["error"]["code"]
        };
        assert_eq!(kind, check, "{error}");
        assert!(
            closed_by(&mut stream, Instant::now() + Duration::from_secs(3)),
            "the connection is closed after the 408"
        );
    }
    assert_eq!(chat(addr).status, 200);
}

/// A kept-alive connection with nothing in flight is closed at the idle timeout, not before.
#[test]
fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let served = serve("idle_timeout_secs = 2", Model::Tiny, None);
    let addr = served.server.addr;
    let mut stream = TcpStream::connect(addr).unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let (status, _, _) = read_sized(&mut reader);
        assert_eq!(status, 200, "the connection is reused");
    }
    let answered = Instant::now();
    assert!(
        !closed_by(&mut stream, answered + Duration::from_millis(1500)),
        "closed before the idle timeout"
    );
    assert!(
        closed_by(&mut stream, answered + Duration::from_secs(5)),
        "not closed after the idle timeout"
    );
    let scrape = Scrape::of(&served.server);
    assert_eq!(
        scrape.value(
            "porten_connections_closed_total",
            &[("porten_connection_close_reason", "idle_timeout")]
        ),
        1.0
    );
}

/// Timeouts of one second bound only the client: a model load, a request queued behind a long
/// stream, and the stream itself all outlast them and arrive whole.
#[test]
fn nothing_porten_owes_a_client_is_timed_out() {
    let _heavy = heavy();
    let served = serve(
        "head_timeout_secs = 1\nbody_timeout_secs = 1\nidle_timeout_secs = 1",
        Model::SmolLm2,
        None,
    );
    let addr = served.server.addr;
    // `wait_ready` loaded nothing: the first request loads the model.
    let started = Instant::now();
    let streamed = std::thread::spawn(move || {
        post_json(addr, "/v1/chat/completions", &chat_body(48, true), &[])
    });
    std::thread::sleep(Duration::from_millis(200));
    let queued = post_json(addr, "/v1/chat/completions", &chat_body(8, false), &[]);
    let streamed = streamed.join().unwrap();
    let took = started.elapsed();
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    let events = streamed.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let finish = events
        .iter()
        .rev()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find_map(|e| {
            e["choices"][0]["finish_reason"]
                .as_str()
                .map(str::to_string)
        });
    assert!(finish.is_some(), "the stream ends with a finish reason");
    assert_eq!(queued.status, 200, "{}", queued.text());
    assert!(
        took > Duration::from_secs(2),
        "the test needs work longer than the timeouts; it took {took:?}"
    );
}

/// With every connection of the cap busy, a new client is refused at once with 503 and
/// `Retry-After` in its own dialect; once the busy ones go, it is served.
#[test]
fn at_the_cap_a_new_client_is_refused_quickly_and_served_when_load_drops() {
    let _heavy = heavy();
    let served = serve(
        "max_connections = 3\nbody_timeout_secs = 30",
        Model::Tiny,
        None,
    );
    let addr = served.server.addr;
    let busy: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(
                    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\
                      content-length: 100\r\n\r\n{\"mod",
                )
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let asked = Instant::now();
    let refused = chat(addr);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry), "{retry}");
    assert_eq!(refused.json()["error"]["code"], "too_many_connections");
    let anthropic = post_json(
        addr,
        "/v1/messages",
        &json!({"model": "m", "max_tokens": 2,
                "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    );
    assert_eq!(anthropic.status, 529, "{}", anthropic.text());
    assert_eq!(anthropic.json()["error"]["type"], "overloaded_error");

    drop(busy);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = chat(addr);
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.status, 503, "{}", answer.text());
        assert!(
            Instant::now() < deadline,
            "still refused after the load went"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let scrape = Scrape::of(&served.server);
    assert!(scrape.value("porten_connections_refused_total", &[]) >= 2.0);
}

/// HTTP/2 with prior knowledge: a thousand streams opened and reset at once do not take the
/// server down, and a normal HTTP/2 request is answered after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_leaves_the_server_serving() {
    let served = tokio::task::spawn_blocking(|| serve("", Model::Tiny, None))
        .await
        .unwrap();
    let addr = served.server.addr;
    let uri = format!("http://{addr}/v1/chat/completions");

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let abusive = tokio::spawn(connection);
    let mut client = Some(client);
    let mut reset = 0;
    while let Some(open) = client.take().filter(|_| reset < 1000) {
        // The server may end the connection for the abuse: that is a fine outcome.
        let Ok(mut ready) = open.ready().await else {
            break;
        };
        let request = http::Request::post(&uri).body(()).unwrap();
        let Ok((_, mut stream)) = ready.send_request(request, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        reset += 1;
        client = Some(ready);
    }
    assert!(reset > 0, "no stream could even be opened");
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(5), abusive).await;

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("http://{addr}/v1/models"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    let models: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(models["data"][0]["id"], "m");
    let answer = tokio::task::spawn_blocking(move || chat(addr))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

/// What already worked and must keep working: bodies trickled a few bytes at a time, a 1 MiB
/// header (431), and streams whose clients vanish mid-answer.
#[test]
fn trickled_bodies_big_heads_and_vanishing_streams_are_handled() {
    let _heavy = heavy();
    let served = serve("", Model::Tiny, None);
    let addr = served.server.addr;

    let trickled: Vec<_> = (0..100)
        .map(|_| {
            std::thread::spawn(move || {
                let body = chat_body(2, false).to_string();
                let mut stream = TcpStream::connect(addr).unwrap();
                let head = format!(
                    "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
                     content-length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                for piece in body.as_bytes().chunks(body.len().div_ceil(4)) {
                    std::thread::sleep(Duration::from_millis(250));
                    stream.write_all(piece).unwrap();
                }
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                read_answer(&mut BufReader::new(stream)).status
            })
        })
        .collect();
    let statuses: Vec<u16> = trickled.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| [200, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");

    let big = "a".repeat(1 << 20);
    let answer = support::http::send(addr, "GET", "/v1/models", &[("x-big", &big)], b"");
    assert_eq!(answer.status, 431);

    for _ in 0..40 {
        let mut stream = support::http::open(
            addr,
            "POST",
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            chat_body(256, true).to_string().as_bytes(),
        );
        let mut first = [0u8; 64];
        let _ = stream.read(&mut first);
        drop(stream);
    }
    assert_eq!(chat(addr).status, 200);
    assert_eq!(get(addr, "/v1/models").status, 200);
}
