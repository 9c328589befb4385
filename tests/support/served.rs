//! `hub serve` as a user runs it: its own process on a free port, its
//! banner read, `kill -9` when the test says so.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Served {
    pub child: Option<Child>,
    pub base: String,
    pub secret: String,
    pub publishable: String,
    pub org: String,
    stderr: std::thread::JoinHandle<String>,
}

impl Served {
    /// Start `bin serve --addr 127.0.0.1:0 --data DIR EXTRA…` with these
    /// environment variables; read the banner it prints.
    pub fn start(bin: &str, dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let mut child = Command::new(bin)
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(dir)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hub serve");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut base, mut secret, mut publishable, mut org) = (None, None, None, None);
        while base.is_none() || secret.is_none() || publishable.is_none() || org.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(120))
                .expect("hub serve banner");
            let last = line
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string();
            if line.starts_with("Practice Hub listening on ") {
                base = Some(last);
            } else if line.contains("test secret key:") {
                secret = Some(last);
            } else if line.contains("test publishable key:") {
                publishable = Some(last);
            } else if line.starts_with("Sandbox organization: ") {
                org = line.split_whitespace().nth(2).map(String::from);
            }
        }
        Served {
            child: Some(child),
            base: base.unwrap(),
            secret: secret.unwrap(),
            publishable: publishable.unwrap(),
            org: org.unwrap(),
            stderr,
        }
    }

    /// SIGINT (Ctrl-C), as a user stops it: the server writes what it has
    /// logged and exits. Returns stderr.
    pub fn stop(self) -> String {
        self.signal("INT").1
    }

    /// Send this signal (`INT`, `TERM`) and wait for the process to end:
    /// whether it exited successfully (not killed by the signal), and its
    /// stderr. If the signal cannot be sent, SIGKILL.
    pub fn signal(mut self, name: &str) -> (bool, String) {
        let mut clean = false;
        if let Some(mut child) = self.child.take() {
            let sent = Command::new("kill")
                .args([&format!("-{name}"), &child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !sent {
                let _ = child.kill();
            }
            clean = child.wait().is_ok_and(|s| s.success());
        }
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new))
            .join()
            .unwrap_or_default();
        (clean, stderr)
    }

    /// SIGKILL: no chance to flush or checkpoint anything. Returns stderr.
    pub fn kill9(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            let _ = child.wait();
        }
        std::mem::replace(&mut self.stderr, std::thread::spawn(String::new))
            .join()
            .unwrap_or_default()
    }
}

impl Drop for Served {
    /// A failing test must not leave a server running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
