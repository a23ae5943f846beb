//! nginx (Debian's) in front of olah, in the place the real Hub puts its CDN: API routes go
//! through to olah, and the LFS files it is told about are answered with a redirect to a copy
//! nginx serves itself, with range requests (which olah's local mirrors do not honour) and an
//! optional rate limit, so a test can kill the server mid-download and see porten resume. One
//! process (`master_process off`), so killing it cuts every transfer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; killed when dropped.
pub struct Cdn {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    upstream: String,
    files: Vec<(String, String)>,
    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub endpoint: String,
}

impl Cdn {
    /// nginx on a free port under `work/cdn`, passing everything to `upstream` (olah's
    /// endpoint) but the `files`, each `(repo, path in the repo, local file)`: a request to
    /// resolve one, at any revision, is redirected to `/lfs/PATH`, served from a copy of the
    /// local file at `rate` (nginx's `limit_rate`, such as `"256k"`; `None` for no limit).
    pub fn start(
        work: &Path,
        upstream: &str,
        files: &[(&str, &str, &Path)],
        rate: Option<&str>,
    ) -> Self {
        let dir = work.join("cdn");
        std::fs::create_dir_all(dir.join("lfs")).unwrap();
        let mut served = Vec::new();
        for (repo, path, local) in files {
            std::fs::copy(local, dir.join("lfs").join(path)).unwrap();
            served.push((repo.to_string(), path.to_string()));
        }
        let mut cdn = Cdn {
            child: None,
            dir,
            port: 0,
            upstream: upstream.to_string(),
            files: served,
            endpoint: String::new(),
        };
        cdn.restart(rate);
        cdn
    }

    /// Kills nginx at once (SIGKILL: connections are cut mid-transfer, as a crash cuts them).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts nginx again on the same port (a new one the first time), with `rate`.
    pub fn restart(&mut self, rate: Option<&str>) {
        self.kill();
        for _ in 0..5 {
            if self.port == 0 {
                self.port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
            }
            let config = self.write_config(rate);
            // Debian puts it in /usr/sbin, which a non-root PATH can lack.
            let nginx = if Path::new("/usr/sbin/nginx").exists() {
                "/usr/sbin/nginx"
            } else {
                "nginx"
            };
            let mut child = Command::new(nginx)
                .arg("-e")
                .arg(self.dir.join("error.log"))
                .arg("-p")
                .arg(&self.dir)
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nginx (scripts/setup-test-deps.sh installs it)");
            let addr = format!("127.0.0.1:{}", self.port).parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if super::http::probe(addr, "/nginx-alive").is_some_and(|a| a.contains("nginx")) {
                    self.endpoint = format!("http://127.0.0.1:{}", self.port);
                    self.child = Some(child);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            // The port was taken meanwhile: another.
            self.port = 0;
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
        );
    }

    /// What nginx logged of each request: `METHOD PATH STATUS BYTES RANGE`, a line each.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    fn write_config(&self, rate: Option<&str>) -> PathBuf {
        let dir = self.dir.display();
        let limit = rate.map(|r| format!("limit_rate {r};")).unwrap_or_default();
        let redirects: String = self
            .files
            .iter()
            .map(|(repo, path)| {
                format!(
                    "    location ~ ^/{repo}/resolve/[^/]+/{path}$ {{ return 302 /lfs/{path}; }}\n"
                )
            })
            .collect();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             events {{}}\nhttp {{\n  log_format ranges '$request_method $uri $status $body_bytes_sent \
             \"$http_range\"';\n  access_log {dir}/access.log ranges;\n  client_body_temp_path \
             {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  \
             uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  server {{\n    listen \
             127.0.0.1:{port};\n{redirects}    location /lfs/ {{ alias {dir}/lfs/; {limit} }}\n    \
             location = /nginx-alive {{ return 200 nginx; }}\n    location / {{ proxy_pass {up}; \
             proxy_set_header Host $http_host; }}\n  }}\n}}\n",
            port = self.port,
            up = self.upstream,
        );
        let path = self.dir.join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        path
    }
}

impl Drop for Cdn {
    fn drop(&mut self) {
        self.kill();
    }
}
