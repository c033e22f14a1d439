//! A TCP proxy in front of a Redis that can lose one command's answer on
//! purpose: it reads the commands going through (RESP arrays) and, when one
//! matches a rule, cuts the connection just before the command reaches
//! Redis, or just after (so it runs and its answer never comes back), as a
//! master failing at that moment would.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// When a matching command's connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The command never reaches Redis.
    Before,
    /// Redis runs it; its answer is lost.
    After,
}

#[derive(Debug, Clone)]
struct Rule {
    /// The command and its first argument, as sent (`EVALSHA`, a script's sha).
    name: Vec<u8>,
    first_arg: Vec<u8>,
    cut: Cut,
}

pub struct RedisProxy {
    pub port: u16,
    rule: Arc<Mutex<Option<Rule>>>,
    cuts: Arc<Mutex<usize>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl RedisProxy {
    /// A proxy on a free loopback port to the Redis at `upstream_port`.
    pub async fn start(upstream_port: u16) -> Self {
        let port = crate::free_port();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("the Redis proxy cannot listen on 127.0.0.1:{port}: {e}"));
        let rule: Arc<Mutex<Option<Rule>>> = Arc::default();
        let cuts: Arc<Mutex<usize>> = Arc::default();
        let (r, c) = (rule.clone(), cuts.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, r.clone(), c.clone()));
            }
        });
        Self {
            port,
            rule,
            cuts,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The next command named `name` whose first argument is `first_arg`
    /// has its connection cut (once).
    pub fn cut_next(&self, name: &str, first_arg: &str, cut: Cut) {
        *self.rule.lock().expect("rule") = Some(Rule {
            name: name.as_bytes().to_vec(),
            first_arg: first_arg.as_bytes().to_vec(),
            cut,
        });
    }

    /// How many connections were cut.
    pub fn cuts(&self) -> usize {
        *self.cuts.lock().expect("cuts")
    }
}

/// The command at the start of `buf` as (its length in bytes, its
/// arguments), once all of it has arrived.
fn parse_command(buf: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let count: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buf.len() < next + len + 2 {
            return None;
        }
        args.push(&buf[next..next + len]);
        at = next + len + 2;
    }
    Some((at, args))
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    rule: Arc<Mutex<Option<Rule>>>,
    cuts: Arc<Mutex<usize>>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let answers = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    'relay: loop {
        match from_client.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while let Some((len, args)) = parse_command(&buf) {
            let cut = {
                let mut rule = rule.lock().expect("rule");
                let matched = rule.as_ref().filter(|r| {
                    args.first()
                        .is_some_and(|n| n.eq_ignore_ascii_case(&r.name))
                        && args.get(1).is_some_and(|a| *a == r.first_arg.as_slice())
                });
                let cut = matched.map(|r| r.cut);
                if cut.is_some() {
                    rule.take();
                }
                cut
            };
            if cut == Some(Cut::After) {
                // No answer gets back from here on, this one's included.
                answers.abort();
            }
            if cut != Some(Cut::Before) && to_server.write_all(&buf[..len]).await.is_err() {
                break 'relay;
            }
            if cut.is_some() {
                *cuts.lock().expect("cuts") += 1;
                // Time for Redis to run it before the answers stop.
                tokio::time::sleep(Duration::from_millis(50)).await;
                break 'relay;
            }
            buf.drain(..len);
        }
        // Not a command this proxy reads (an inline one): passed as it is.
        if !buf.is_empty() && !buf.starts_with(b"*") {
            if to_server.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
        }
    }
    answers.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_whole_or_not_at_all() {
        let cmd = b"*3\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n0\r\n";
        let (len, args) = parse_command(cmd).expect("a whole command");
        assert_eq!(len, cmd.len());
        assert_eq!(args, vec![&b"EVALSHA"[..], b"abc", b"0"]);
        assert!(parse_command(&cmd[..cmd.len() - 1]).is_none());
        assert!(parse_command(b"*1\r\n$4\r\nPI").is_none());
    }
}
