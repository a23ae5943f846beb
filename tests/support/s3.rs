//! A real S3-compatible server for the mirror tests: moto (`moto_server`, installed into .venv
//! by `scripts/setup-test-deps.sh`) on 127.0.0.1, and a proxy in front of it that answers 5xx
//! for a while, the one fault moto cannot be asked to produce.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http;

/// A running moto server, killed when dropped. Its objects live in its memory.
pub struct Moto {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl Moto {
    /// Starts moto on a port it picks itself (port 0), so that no other test's server can take
    /// the port between picking and binding it.
    pub fn start() -> Self {
        Self::start_listening_on("127.0.0.1")
    }

    /// Like [`Self::start`], listening on every address (for clients in other network
    /// namespaces); still reached on 127.0.0.1 here.
    pub fn start_on_every_address() -> Self {
        Self::start_listening_on("0.0.0.0")
    }

    fn start_listening_on(host: &str) -> Self {
        let (mut child, named_port) = spawn(host, 0);
        let port = match named_port.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("moto did not say which port it listens on");
            }
        };
        Self::wait_until_it_answers(child, port)
    }

    /// Starts moto on `port` (one a killed moto had) and waits until it answers.
    pub fn start_on(port: u16) -> Self {
        let (child, _) = spawn("127.0.0.1", port);
        Self::wait_until_it_answers(child, port)
    }

    /// Waits until moto itself answers as S3 on `port` (see [`http::probe`] for why a TCP
    /// connect is not enough). A moto that never answers is killed with the panic.
    fn wait_until_it_answers(child: Child, port: u16) -> Self {
        let mut moto = Moto {
            child: Some(child),
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        };
        let addr = moto.addr;
        let child = moto.child.as_mut().expect("just started");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !http::probe(addr, "/").is_some_and(|text| text.contains("ListAllMyBucketsResult")) {
            assert!(child.try_wait().unwrap().is_none(), "moto exited on {addr}");
            assert!(Instant::now() < deadline, "moto did not start on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) {
        let answer = http::send(self.addr, "PUT", &format!("/{name}"), &[], b"");
        assert_eq!(answer.status, 200, "create bucket: {}", answer.text());
    }

    /// SIGKILLs the server: every object is gone with it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The environment a client uses to reach it: the standard AWS variables, with plain HTTP
    /// allowed since it is asked for.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_via(self.addr)
    }

    /// [`Self::env`], but reaching the server through `endpoint` (a proxy).
    pub fn env_via(&self, endpoint: SocketAddr) -> Vec<(String, String)> {
        client_env(endpoint)
    }

    /// An `object_store` client for bucket `bucket`, for a test to read or tamper with objects.
    pub fn client(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        client(self.addr, bucket)
    }
}

/// The standard AWS variables that point a client at an S3-compatible server on `endpoint`,
/// with plain HTTP allowed since it is asked for.
pub fn client_env(endpoint: SocketAddr) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", format!("http://{endpoint}")),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// An `object_store` client for `bucket` on the server at `endpoint`.
pub fn client(endpoint: SocketAddr, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(format!("http://{endpoint}"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap()
}

/// Starts `moto_server` on `host`:`port`; the port it listens on comes through the receiver.
fn spawn(host: &str, port: u16) -> (Child, std::sync::mpsc::Receiver<u16>) {
    let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    assert!(
        binary.exists(),
        "{} is missing: run scripts/setup-test-deps.sh",
        binary.display()
    );
    let mut child = Command::new(binary)
        .args(["-H", host, "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start moto_server");
    let stderr = child.stderr.take().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    // werkzeug names its port on stderr, then logs every request there: read it to the end so
    // that moto never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(port) = line
                .split("Running on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.trim().parse::<u16>().ok())
            {
                let _ = port_tx.send(port);
            }
        }
    });
    (child, port_rx)
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy that answers every other connection with a 503 or 500 (alternating) and closes
/// it, until it has done so `failures` times; the other connections are passed through to
/// `upstream` byte for byte.
pub struct FlakyProxy {
    pub addr: SocketAddr,
    failed: Arc<AtomicUsize>,
}

impl FlakyProxy {
    pub fn start(upstream: SocketAddr, failures: usize) -> Self {
        Self::start_throttled(upstream, failures, None)
    }

    /// [`Self::start`], passing answers on at no more than `bytes_per_sec`: a download that
    /// lasts long enough for a test to act in the middle of it.
    pub fn start_throttled(
        upstream: SocketAddr,
        failures: usize,
        bytes_per_sec: Option<u64>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let failed = Arc::new(AtomicUsize::new(0));
        let count = failed.clone();
        std::thread::spawn(move || {
            for (connection, client) in listener.incoming().flatten().enumerate() {
                let n = count.load(Ordering::SeqCst);
                if n < failures && connection % 2 == 0 {
                    count.fetch_add(1, Ordering::SeqCst);
                    let status = if n.is_multiple_of(2) {
                        "503 Service Unavailable"
                    } else {
                        "500 Internal Server Error"
                    };
                    answer_and_close(client, status);
                } else {
                    std::thread::spawn(move || pass_through(client, upstream, bytes_per_sec));
                }
            }
        });
        FlakyProxy { addr, failed }
    }

    /// Connections answered with an error so far.
    pub fn failures_served(&self) -> usize {
        self.failed.load(Ordering::SeqCst)
    }
}

fn answer_and_close(mut client: TcpStream, status: &str) {
    // Read the request head, so the client sees an answer rather than a reset.
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    let _ = client.write_all(
        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
    );
}

fn pass_through(client: TcpStream, upstream: SocketAddr, bytes_per_sec: Option<u64>) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut s_read, mut c_write) = (server, client);
    match bytes_per_sec {
        None => {
            let _ = std::io::copy(&mut s_read, &mut c_write);
        }
        Some(rate) => {
            let started = Instant::now();
            let mut sent = 0u64;
            let mut buffer = vec![0u8; 64 << 10];
            while let Ok(n) = s_read.read(&mut buffer) {
                if n == 0 || c_write.write_all(&buffer[..n]).is_err() {
                    break;
                }
                sent += n as u64;
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
    }
    let _ = c_write.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}
