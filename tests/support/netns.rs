//! Network namespaces for fleet tests: each node of a test fleet runs in its own, joined to
//! this one by a veth pair on a /30 of its own (`10.A.B.1` here, `10.A.B.2` there). Made and
//! torn down by the test; needs root and `ip` (iproute2).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace with a veth link to this one, deleted when dropped.
pub struct Netns {
    /// Its name, for `ip netns exec`.
    pub name: String,
    /// This side's address on the link: what processes inside reach the host at.
    pub host_ip: Ipv4Addr,
    /// The namespace's address on the link.
    pub ip: Ipv4Addr,
    host_link: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A fresh namespace, named and addressed apart from every other one this process made
    /// (and, by the process id, from other test processes').
    pub fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("porten-{pid}-{n}");
        // 10.(64 + pid % 64).(n / 64).(4 * (n % 64)) + 1, + 2: one /30 per namespace.
        let (a, b, c) = (64 + (pid % 64) as u8, (n / 64) as u8, (4 * (n % 64)) as u8);
        let host_ip = Ipv4Addr::new(10, a, b, c + 1);
        let inside_ip = Ipv4Addr::new(10, a, b, c + 2);
        let host_link = format!("pv{}h{n}", pid % 100_000);
        let inside_link = format!("pv{}n{n}", pid % 100_000);
        ip(&["netns", "add", &name]);
        let made = Netns {
            name: name.clone(),
            host_ip,
            ip: inside_ip,
            host_link: host_link.clone(),
        };
        ip(&[
            "link",
            "add",
            &host_link,
            "type",
            "veth",
            "peer",
            "name",
            &inside_link,
        ]);
        ip(&["link", "set", &inside_link, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_link]);
        ip(&["link", "set", &host_link, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&[
            "addr",
            "add",
            &format!("{inside_ip}/30"),
            "dev",
            &inside_link,
        ]);
        inside(&["link", "set", &inside_link, "up"]);
        inside(&["link", "set", "lo", "up"]);
        made
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it this end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
