//! Where a command goes, and what its answer means for the routing: the
//! pure half of the cluster client, tested without a cluster.

use super::topology::{key_slot, Addr};
use redis::{Arg, Cmd, Pipeline, ServerErrorKind, Value};

/// Where a request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The master of this slot.
    Slot(u16),
    /// Any one master (a command without keys).
    AnyMaster,
    /// Every master (scripts are loaded on each, since a promoted replica
    /// has none of its old master's).
    EveryMaster,
}

/// Commands whose arguments name no key.
const KEYLESS: &[&[u8]] = &[
    b"ACL",
    b"ASKING",
    b"AUTH",
    b"BGREWRITEAOF",
    b"BGSAVE",
    b"CLIENT",
    b"CLUSTER",
    b"COMMAND",
    b"CONFIG",
    b"DBSIZE",
    b"DEBUG",
    b"DISCARD",
    b"ECHO",
    b"EXEC",
    b"FLUSHALL",
    b"FLUSHDB",
    b"HELLO",
    b"INFO",
    b"KEYS",
    b"LASTSAVE",
    b"LATENCY",
    b"MODULE",
    b"MONITOR",
    b"MULTI",
    b"PING",
    b"PSUBSCRIBE",
    b"PUBLISH",
    b"PUBSUB",
    b"PUNSUBSCRIBE",
    b"QUIT",
    b"RANDOMKEY",
    b"READONLY",
    b"READWRITE",
    b"RESET",
    b"ROLE",
    b"SAVE",
    b"SCAN",
    b"SELECT",
    b"SHUTDOWN",
    b"SLOWLOG",
    b"SUBSCRIBE",
    b"SWAPDB",
    b"TIME",
    b"UNSUBSCRIBE",
    b"UNWATCH",
    b"WAIT",
    b"WAITAOF",
];

/// Commands that must reach every master.
const EVERY_MASTER: &[&[u8]] = &[b"SCRIPT", b"FUNCTION"];

fn args(cmd: &Cmd) -> Vec<&[u8]> {
    cmd.args_iter()
        .filter_map(|a| match a {
            Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect()
}

/// The first key `cmd` names, if any.
fn first_key(cmd: &Cmd) -> Result<Option<Vec<u8>>, Target> {
    let args = args(cmd);
    let Some(name) = args.first() else {
        return Ok(None);
    };
    let name = name.to_ascii_uppercase();
    let name = name.as_slice();
    if EVERY_MASTER.contains(&name) {
        return Err(Target::EveryMaster);
    }
    if KEYLESS.contains(&name) {
        return Ok(None);
    }
    let key = match name {
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let keys: usize = args
                .get(2)
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if keys == 0 {
                None
            } else {
                args.get(3)
            }
        }
        b"XREAD" | b"XREADGROUP" => args
            .iter()
            .position(|a| a.eq_ignore_ascii_case(b"STREAMS"))
            .and_then(|i| args.get(i + 1)),
        b"XGROUP" | b"XINFO" | b"OBJECT" | b"MEMORY" => args.get(2),
        _ => args.get(1),
    };
    Ok(key.map(|k| k.to_vec()))
}

/// Where one command goes.
pub fn target_of(cmd: &Cmd) -> Target {
    match first_key(cmd) {
        Err(target) => target,
        Ok(Some(key)) => Target::Slot(key_slot(&key)),
        Ok(None) => Target::AnyMaster,
    }
}

/// Where a pipeline goes: the slot its keys share (Lobby's pipelines stay in
/// one slot, as its scripts do; Redis answers CROSSSLOT otherwise).
pub fn target_of_pipeline(pipeline: &Pipeline) -> Target {
    pipeline
        .cmd_iter()
        .map(target_of)
        .find(|t| *t != Target::AnyMaster)
        .unwrap_or(Target::AnyMaster)
}

/// Whether a server refused a command without running it because of the
/// cluster, not the command: the slot is served elsewhere (MOVED, ASK), the
/// cluster is failing over (CLUSTERDOWN, MASTERDOWN), a replica was asked
/// to write (READONLY), the node is loading (LOADING), or a multi-key
/// command met a slot in migration (TRYAGAIN).
pub fn refused_by_the_cluster(kind: ServerErrorKind) -> bool {
    matches!(
        kind,
        ServerErrorKind::Moved
            | ServerErrorKind::Ask
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::ReadOnly
    )
}

/// What an answer tells the router.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// An answer for the caller (a value, or an error of the command's own).
    Answer,
    /// The slot lives elsewhere now.
    Moved { slot: u16, addr: Addr },
    /// Ask that node, this once (a slot being migrated).
    Ask { addr: Addr },
    /// Refused without running: the cluster is failing over, a replica was
    /// asked to write, the node is loading, or a multi-key command met a
    /// slot in migration. Safe to send again once the topology is known.
    NotRun,
}

/// The address a redirect names; an empty host is the answering node's.
fn redirect_addr(detail: &str, answered_by: &str) -> Option<(u16, Addr)> {
    let mut parts = detail.split_ascii_whitespace();
    let slot: u16 = parts.next()?.parse().ok()?;
    let (host, port) = parts.next()?.rsplit_once(':')?;
    let host = if host.is_empty() {
        answered_by.rsplit_once(':').map_or(answered_by, |(h, _)| h)
    } else {
        host
    };
    Some((slot, format!("{host}:{port}").into()))
}

/// What one reply (of a command, or of one command of a pipeline) means.
pub fn verdict(value: &Value, answered_by: &str) -> Verdict {
    let Value::ServerError(error) = value else {
        return Verdict::Answer;
    };
    match error.kind() {
        Some(ServerErrorKind::Moved) => {
            match error.details().and_then(|d| redirect_addr(d, answered_by)) {
                Some((slot, addr)) => Verdict::Moved { slot, addr },
                None => Verdict::NotRun,
            }
        }
        Some(ServerErrorKind::Ask) => {
            match error.details().and_then(|d| redirect_addr(d, answered_by)) {
                Some((_, addr)) => Verdict::Ask { addr },
                None => Verdict::NotRun,
            }
        }
        // A transaction refused as a whole (its commands were redirected
        // while queued): nothing of it ran.
        Some(ServerErrorKind::ExecAbort) => Verdict::NotRun,
        Some(kind) if refused_by_the_cluster(kind) => Verdict::NotRun,
        _ => Verdict::Answer,
    }
}

/// What an error returned for a request (rather than as a reply) means: a
/// transaction refused as a whole comes back so, with what each of its
/// commands met while queued. `None`: the request's own error.
pub fn error_verdict(error: &redis::RedisError, answered_by: &str) -> Option<Verdict> {
    match error.kind() {
        redis::ErrorKind::Server(ServerErrorKind::ExecAbort) => {
            let queued = error.clone().into_server_errors()?;
            let verdicts: Vec<Verdict> = queued
                .iter()
                .map(|(_, e)| verdict(&Value::ServerError(e.clone()), answered_by))
                .collect();
            // Refused only if every error was the cluster's, not the command's.
            if verdicts.is_empty() || verdicts.contains(&Verdict::Answer) {
                return None;
            }
            Some(match verdicts.into_iter().next() {
                Some(moved @ Verdict::Moved { .. }) => moved,
                _ => Verdict::NotRun,
            })
        }
        redis::ErrorKind::Server(kind) if refused_by_the_cluster(kind) => {
            Some(match error.redirect_node() {
                Some((addr, slot))
                    if error.kind() == redis::ErrorKind::Server(ServerErrorKind::Moved) =>
                {
                    redirect_addr(&format!("{slot} {addr}"), answered_by).map_or(
                        Verdict::NotRun,
                        |(slot, addr)| Verdict::Moved { slot, addr },
                    )
                }
                _ => Verdict::NotRun,
            })
        }
        _ => None,
    }
}

/// What a pipeline's replies mean: its commands share one slot, so the first
/// reply that is a redirect or a refusal speaks for all of them.
pub fn pipeline_verdict(values: &[Value], answered_by: &str) -> Verdict {
    values
        .iter()
        .map(|v| verdict(v, answered_by))
        .find(|v| *v != Verdict::Answer)
        .map(|v| match v {
            // ASKING holds for one command; a pipeline waits for the
            // migration to end instead.
            Verdict::Ask { .. } => Verdict::NotRun,
            other => other,
        })
        .unwrap_or(Verdict::Answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> Value {
        // The parser that reads replies off the wire.
        redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).expect("a reply")
    }

    #[test]
    fn commands_go_to_the_slot_of_their_first_key() {
        let slot = |key: &str| Target::Slot(key_slot(key.as_bytes()));
        assert_eq!(
            target_of(redis::cmd("HGET").arg("{a1}:x").arg("f")),
            slot("a1")
        );
        assert_eq!(
            target_of(
                redis::cmd("EVALSHA")
                    .arg("abc")
                    .arg(2)
                    .arg("{a9}:k")
                    .arg("{a9}:j")
            ),
            slot("a9")
        );
        assert_eq!(
            target_of(redis::cmd("EVALSHA").arg("abc").arg(0)),
            Target::AnyMaster
        );
        assert_eq!(
            target_of(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("g")
                    .arg("c")
                    .arg("COUNT")
                    .arg(1)
                    .arg("streams")
                    .arg("{summaries}:jobs")
                    .arg(">")
            ),
            slot("summaries")
        );
        assert_eq!(
            target_of(redis::cmd("XGROUP").arg("CREATE").arg("{s}:jobs").arg("g")),
            slot("s")
        );
        assert_eq!(target_of(&redis::cmd("PING")), Target::AnyMaster);
        assert_eq!(
            target_of(redis::cmd("publish").arg("ch").arg("m")),
            Target::AnyMaster
        );
        assert_eq!(
            target_of(redis::cmd("SCRIPT").arg("LOAD").arg("return 1")),
            Target::EveryMaster
        );
    }

    #[test]
    fn a_pipeline_goes_where_its_keys_are() {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset("{a3}:r", "f", 1)
            .zadd("{a3}:due", "m", 1);
        assert_eq!(target_of_pipeline(&pipe), Target::Slot(key_slot(b"a3")));
        let mut keyless = redis::pipe();
        keyless.cmd("PING");
        assert_eq!(target_of_pipeline(&keyless), Target::AnyMaster);
    }

    #[test]
    fn redirects_and_refusals_are_read_from_the_reply() {
        assert_eq!(
            verdict(&reply("MOVED 3999 127.0.0.1:6381"), "127.0.0.1:6380"),
            Verdict::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            }
        );
        // Redis 7 may leave the host out: it is the answering node's.
        assert_eq!(
            verdict(&reply("MOVED 12 :6390"), "10.0.0.5:6380"),
            Verdict::Moved {
                slot: 12,
                addr: "10.0.0.5:6390".into()
            }
        );
        assert_eq!(
            verdict(&reply("ASK 12 10.0.0.6:6379"), "10.0.0.5:6380"),
            Verdict::Ask {
                addr: "10.0.0.6:6379".into()
            }
        );
        for refusal in [
            "CLUSTERDOWN The cluster is down",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "LOADING Redis is loading the dataset in memory",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
            "EXECABORT Transaction discarded because of previous errors.",
        ] {
            assert_eq!(
                verdict(&reply(refusal), "x:1"),
                Verdict::NotRun,
                "{refusal}"
            );
        }
        for answer in [
            "NOSCRIPT No matching script",
            "WRONGTYPE Operation against a key",
        ] {
            assert_eq!(verdict(&reply(answer), "x:1"), Verdict::Answer, "{answer}");
        }
        assert_eq!(verdict(&Value::Int(1), "x:1"), Verdict::Answer);
        assert_eq!(
            pipeline_verdict(&[Value::Okay, reply("ASK 1 a:2")], "x:1"),
            Verdict::NotRun
        );
        assert_eq!(
            pipeline_verdict(&[Value::Okay, Value::Int(2)], "x:1"),
            Verdict::Answer
        );
    }
}
