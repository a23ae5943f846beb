//! A deliberately raw HTTP/1.1 client: it sends exactly the bytes a test wants (malformed ones
//! too) and reads the whole answer, de-chunking it and splitting server-sent events.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A complete response.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of an SSE body, checking each event ends with a blank line.
    pub fn events(&self) -> Vec<String> {
        let text = self.text();
        assert!(
            text.ends_with("\n\n"),
            "SSE body must end with a blank line: {text:?}"
        );
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                e.strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("event without `data: `: {e:?}"))
                    .to_string()
            })
            .collect()
    }
}

impl Answer {
    /// The events of a named SSE body (`event: NAME` then `data: JSON`), checking that each
    /// ends with a blank line and that its `type` repeats its name; comments are skipped.
    pub fn named_events(&self) -> Vec<(String, Value)> {
        let text = self.text();
        assert!(
            text.ends_with("\n\n"),
            "SSE body must end with a blank line: {text:?}"
        );
        text.split("\n\n")
            .filter(|e| !e.is_empty() && !e.starts_with(':'))
            .map(|e| {
                let (name, data) = e
                    .strip_prefix("event: ")
                    .and_then(|rest| rest.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("not a named event: {e:?}"));
                let data: Value = serde_json::from_str(data)
                    .unwrap_or_else(|err| panic!("event data is not JSON ({err}): {data}"));
                assert_eq!(data["type"], name, "`type` repeats the event's name");
                (name.to_string(), data)
            })
            .collect()
    }
}

/// Sends `method path` with `headers` and `body`, and reads the whole answer.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = open(addr, method, path, headers, body);
    let mut reader = BufReader::new(&mut stream);
    read_answer(&mut reader)
}

/// POSTs a JSON value.
pub fn post_json(addr: SocketAddr, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(addr, "POST", path, &all, body.to_string().as_bytes())
}

/// GETs `path` without panicking, for waiting on a server that is starting: the whole answer
/// as text, or None if nothing answers. A caller checks the text is its server's, since a bare
/// TCP connect may reach another server on the port, or the probe's own socket (a loopback
/// connect to a port nobody listens on can pick that port as its source and connect to itself).
pub fn probe(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// GETs a path.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    send(addr, "GET", path, &[], b"")
}

/// Writes a request and returns the open connection, for tests that read a stream by hand.
pub fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    stream
}

/// Reads status line and headers.
pub fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_lowercase(), v.trim().to_string()));
    }
    (status, headers)
}

/// Reads one chunk of a chunked body; `None` at the end.
pub fn read_chunk(reader: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut size = String::new();
    reader.read_line(&mut size).unwrap();
    let size = usize::from_str_radix(size.trim(), 16)
        .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).unwrap();
    data.truncate(size);
    (size > 0).then_some(data)
}

/// Reads a whole response: head and body, chunked or not.
pub fn read_answer(reader: &mut impl BufRead) -> Answer {
    let (status, headers) = read_head(reader);
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        while let Some(chunk) = read_chunk(reader) {
            body.extend_from_slice(&chunk);
        }
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    Answer {
        status,
        headers,
        body,
    }
}
