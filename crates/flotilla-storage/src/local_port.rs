//! Loopback ports for local etcd members: the test clusters of `etcd_process` and the
//! playground's cluster of `flotilla dev --hubs`, whose ports are remembered between runs.
//!
//! They come from below the kernel's ephemeral range, so no outgoing connection (a hub, an
//! etcd peer) can hold one between choosing it and etcd binding it, nor while a member is
//! down, and no port is handed out twice by one process.

use std::sync::atomic::{AtomicU32, Ordering};

/// A loopback port that was free when asked, below the kernel's ephemeral range (so outgoing
/// connections never take it) and not handed out before by this process.
pub fn free_port() -> std::io::Result<u16> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, span) = listen_port_range();
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let offset = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = (low + offset) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free loopback port below the ephemeral range",
    ))
}

/// Ports from 10000 up to the start of `net.ipv4.ip_local_port_range` (default 32768).
fn listen_port_range() -> (u32, u32) {
    const LOW: u32 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&first| first > LOW + 1_000)
        .unwrap_or(32_768);
    (LOW, ephemeral_low - LOW)
}
