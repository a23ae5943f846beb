//! What idle connections cost the ones doing work: requests/s and p50 latency of one-token chats
//! on a tiny model from a few keep-alive clients, with and without 2,000 idle keep-alive
//! connections held open beside them (each made one request, then went quiet). Rounds
//! alternate between the two conditions on one server, so drift hits both alike; prints the
//! ratio (target >= 0.95x).
//!
//! `cargo bench --bench connections` (BENCH_ROUNDS, BENCH_SECS, BENCH_CLIENTS, BENCH_IDLE).

mod common;
#[path = "../tests/support/file_limit.rs"]
mod file_limit;
#[allow(dead_code)]
#[path = "../tests/support/fixtures.rs"]
mod fixtures;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::load::{interleaved, measure};
use common::{env_usize, Porten};
use file_limit::raise_own_file_limit;

/// Opens `count` connections that each make one request and then stay open, idle.
fn idle_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /v1/models HTTP/1.1\r\nhost: b\r\n\r\n")
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let mut length = 0;
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("HTTP/1.1 200"), "{line}");
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            reader.read_exact(&mut vec![0; length]).unwrap();
            stream
        })
        .collect()
}

fn main() {
    let rounds = env_usize("BENCH_ROUNDS", 6);
    let secs = env_usize("BENCH_SECS", 4) as f64;
    let clients = env_usize("BENCH_CLIENTS", 4);
    let idle = env_usize("BENCH_IDLE", 2000);
    raise_own_file_limit(idle as u64 + 512);

    let models = tempfile::tempdir().unwrap();
    let tiny = models.path().join("tiny");
    fixtures::write_tiny_chat_model(&tiny);
    let model = format!("tiny={}", tiny.display());
    let home = tempfile::tempdir().unwrap();
    let server = Porten::start(home.path(), &["--model".as_ref(), model.as_ref()]);
    measure(server.addr, clients, 1.0);

    let (beside, alone) = interleaved(rounds, |with_idle| {
        // Fresh each round, well within the idle timeout.
        let held = with_idle.then(|| idle_connections(server.addr, idle));
        let figures = measure(server.addr, clients, secs);
        drop(held);
        figures
    });
    let (alone, alone_p50) = (alone.rate, alone.p50_ms);
    let (beside, beside_p50) = (beside.rate, beside.p50_ms);
    println!("idle connections: 1-token chat on a tiny model, {clients} keep-alive clients, {rounds} rounds of {secs} s");
    println!("  alone              : {alone:8.1} req/s   p50 {alone_p50:6.3} ms");
    println!("  beside {idle:5} idle  : {beside:8.1} req/s   p50 {beside_p50:6.3} ms");
    println!(
        "  ratio               : {:.3}x requests/s, {:.3}x p50 latency (target >= 0.95x requests/s)",
        beside / alone,
        beside_p50 / alone_p50
    );
}
