//! Load from keep-alive clients: one-token chats on a tiny model, back to back, for
//! requests/s and latency.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A one-token chat for the model `tiny`.
pub const BODY: &str = r#"{"model":"tiny","max_tokens":1,"temperature":0,"messages":[{"role":"user","content":"hi"}]}"#;

/// One keep-alive connection sending the same small request.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Sends one request and reads its answer; returns the latency.
    pub fn request(&mut self) -> Duration {
        let start = Instant::now();
        write!(
            self.writer,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: b\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        start.elapsed()
    }
}

/// `clients` connections sending back to back for `secs`: requests/s and every latency.
pub fn measure(addr: SocketAddr, clients: usize, secs: f64) -> (f64, Vec<f64>) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    latencies.push(client.request().as_secs_f64());
                }
                latencies
            })
        })
        .collect();
    let latencies: Vec<f64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    (
        latencies.len() as f64 / started.elapsed().as_secs_f64(),
        latencies,
    )
}

/// One variant's figures over all rounds: the median of its rounds' requests/s and the median
/// and 99th percentile of all its latencies, in ms.
pub struct Medians {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `rounds` rounds of `run(true)` and `run(false)`, each a `measure`, in alternating order so
/// neither variant always goes first: the figures for `true`, then for `false`.
pub fn interleaved(
    rounds: usize,
    mut run: impl FnMut(bool) -> (f64, Vec<f64>),
) -> (Medians, Medians) {
    let mut figures: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for variant in order {
            let (rate, latencies) = run(variant);
            let (rates, all) = &mut figures[usize::from(!variant)];
            rates.push(rate);
            all.extend(latencies);
        }
    }
    let [yes, no] = figures.map(|(rates, mut latencies)| {
        latencies.sort_by(f64::total_cmp);
        let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
        Medians {
            rate: super::median(rates),
            p50_ms: super::median(latencies) * 1e3,
            p99_ms: p99 * 1e3,
        }
    });
    (yes, no)
}
