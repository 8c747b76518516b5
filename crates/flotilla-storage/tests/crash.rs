//! Crash safety: a writer process is killed with SIGKILL in the middle of a stream of
//! writes; every write it acknowledged must be in the store when it is reopened, and the
//! revision must keep growing.
//!
//! The writer is this test binary itself, re-run with `--ignored --exact crash_child` and
//! the store directory in `FLOTILLA_CRASH_DIR`. It prints one line per acknowledged write.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use flotilla_storage::{Backend, EmbeddedBackend, Precondition};

const DIR_ENV: &str = "FLOTILLA_CRASH_DIR";
const ROUND_ENV: &str = "FLOTILLA_CRASH_ROUND";
const WRITERS: usize = 4;
/// A safety net: the child stops by itself if nobody kills it.
const CHILD_MAX_WRITES: usize = 20_000;

/// The child: writes until killed. Not a test on its own (it does nothing without the
/// environment the parent sets), hence ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for crash_mid_stream_keeps_every_acknowledged_write"]
async fn crash_child() {
    let (Ok(dir), Ok(round)) = (std::env::var(DIR_ENV), std::env::var(ROUND_ENV)) else {
        return;
    };
    let store = Arc::new(EmbeddedBackend::open(&dir).expect("child opens the store"));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            let round = round.clone();
            tokio::spawn(async move {
                for n in 0..CHILD_MAX_WRITES / WRITERS {
                    let key = format!("/crash/r{round}/w{w}/{n:06}");
                    let value =
                        Bytes::from(format!("{{\"round\":{round},\"writer\":{w},\"n\":{n}}}"));
                    let kv = store
                        .put(&key, value, Precondition::Absent)
                        .await
                        .expect("child put");
                    println!("ACK PUT {key} {} END", kv.mod_revision);
                    // Every fifth write also deletes an earlier key of this writer.
                    if n % 5 == 4 {
                        let old = format!("/crash/r{round}/w{w}/{:06}", n - 2);
                        let (_, rev) = store
                            .delete(&old, Precondition::Exists)
                            .await
                            .expect("child delete");
                        println!("ACK DEL {old} {rev} END");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("child writer");
    }
}

/// What the child acknowledged: key → Some(revision of the put) or None (deleted), and
/// the highest acknowledged revision.
#[derive(Default)]
struct Acks {
    keys: BTreeMap<String, Option<i64>>,
    max_revision: i64,
    count: usize,
}

impl Acks {
    fn record(&mut self, line: &str) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let ["ACK", kind, key, rev, "END"] = parts.as_slice() else {
            return;
        };
        let rev: i64 = rev.parse().expect("revision in ack line");
        match *kind {
            "PUT" => self.keys.insert(key.to_string(), Some(rev)),
            "DEL" => self.keys.insert(key.to_string(), None),
            other => panic!("unknown ack kind {other}"),
        };
        self.max_revision = self.max_revision.max(rev);
        self.count += 1;
    }
}

/// Whether the child deletes `key` later in its stream (write `n` deletes write `n - 2`
/// when `n % 5 == 4`).
fn deleted_later(key: &str) -> bool {
    let n: usize = key
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("key ends in its sequence number");
    n % 5 == 2
}

fn run_child_and_kill(dir: &std::path::Path, round: usize, kill_after: usize) -> Acks {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(ROUND_ENV, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut acks = Acks::default();
    while acks.count < kill_after {
        match lines.next() {
            Some(line) => acks.record(&line.expect("read child output")),
            None => panic!("child exited after {} acknowledged writes", acks.count),
        }
    }
    child.kill().expect("SIGKILL the child");
    // Lines already in the pipe were acknowledged too.
    for line in lines {
        acks.record(&line.expect("read child output"));
    }
    let status = child.wait().expect("reap child");
    assert!(!status.success(), "the child was killed, not finished");
    acks
}

#[tokio::test]
async fn crash_mid_stream_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut floor = 1;
    for (round, kill_after) in [(0, 120), (1, 77), (2, 203)] {
        let acks = run_child_and_kill(dir.path(), round, kill_after);
        assert!(acks.count >= kill_after);
        assert!(acks.max_revision > floor, "revisions moved forward");

        let store = EmbeddedBackend::open(dir.path()).expect("reopen after the crash");
        let current = store.current_revision().await.unwrap();
        assert!(
            current >= acks.max_revision,
            "revision {current} < acknowledged {}",
            acks.max_revision
        );
        for (key, ack) in &acks.keys {
            let got = store.get(key).await.unwrap();
            match ack {
                Some(_) if got.is_none() && deleted_later(key) => {
                    // The child may have committed this key's delete without living to
                    // acknowledge it.
                }
                Some(rev) => {
                    let kv = got.unwrap_or_else(|| panic!("acknowledged put of {key} lost"));
                    assert_eq!(kv.mod_revision, *rev, "{key}");
                    assert_eq!(kv.create_revision, *rev, "{key}");
                    let value = std::str::from_utf8(&kv.value).expect("utf-8 value");
                    assert!(
                        value.starts_with(&format!("{{\"round\":{round},")),
                        "{key}: {value}"
                    );
                }
                None => assert!(got.is_none(), "acknowledged delete of {key} undone"),
            }
        }
        // The whole store reads back, in order, at the recovered revision.
        let all = store.range("/crash/", None, 0).await.unwrap();
        assert_eq!(all.revision, current);
        assert!(all.kvs.iter().all(|kv| kv.mod_revision <= current));

        let after = store
            .put(
                &format!("/after/{round}"),
                Bytes::from_static(b"{}"),
                Precondition::Absent,
            )
            .await
            .unwrap();
        assert!(after.mod_revision > acks.max_revision);
        assert_eq!(after.mod_revision, current + 1);
        floor = after.mod_revision;
    }
}
