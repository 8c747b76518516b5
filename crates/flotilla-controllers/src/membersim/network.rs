//! Addresses a real cluster hands out: Service cluster IPs (10.96.0.0/12), node ports,
//! load-balancer IPs for `type: LoadBalancer` Services and Ingresses. Allocation is
//! deterministic (a hash of the member's seed and the object's key, probing linearly past
//! addresses in use) and unique within the member.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::{Value, json};

/// An address range and what is taken in it.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    base: u32,
    size: u32,
    /// Offsets never handed out (network address, the `kubernetes` Service, ...).
    reserved: BTreeSet<u32>,
    taken: BTreeMap<u32, String>,
}

/// Errors allocating addresses.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Every address of the pool is in use.
    #[error("no free address left in {0}")]
    Exhausted(String),
}

impl Pool {
    /// A pool over `base/prefix`, never handing out the first `reserved_low` offsets nor the
    /// broadcast address.
    pub(crate) fn new(base: Ipv4Addr, prefix: u8, reserved_low: u32) -> Pool {
        let size = 1u32 << (32 - u32::from(prefix));
        let mut reserved: BTreeSet<u32> = (0..reserved_low.min(size)).collect();
        reserved.insert(size - 1);
        Pool {
            base: u32::from(base),
            size,
            reserved,
            taken: BTreeMap::new(),
        }
    }

    /// Marks `ip` as used by `key` (ignored when outside the pool).
    pub(crate) fn mark(&mut self, ip: &str, key: &str) {
        if let Ok(ip) = ip.parse::<Ipv4Addr>() {
            let n = u32::from(ip).wrapping_sub(self.base);
            if n < self.size {
                self.taken.insert(n, key.to_string());
            }
        }
    }

    /// The address already held by `key`, if any.
    pub(crate) fn held_by(&self, key: &str) -> Option<String> {
        self.taken
            .iter()
            .find(|(_, k)| k.as_str() == key)
            .map(|(n, _)| Ipv4Addr::from(self.base + n).to_string())
    }

    /// Allocates an address for `key`: its own if it holds one, else the first free one from
    /// the hash of `seed` and `key`.
    pub(crate) fn allocate(&mut self, seed: &str, key: &str) -> Result<String, Error> {
        if let Some(ip) = self.held_by(key) {
            return Ok(ip);
        }
        let start = (fnv1a(&format!("{seed}/{key}")) % u64::from(self.size)) as u32;
        for i in 0..self.size {
            let n = (start + i) % self.size;
            if self.reserved.contains(&n) || self.taken.contains_key(&n) {
                continue;
            }
            self.taken.insert(n, key.to_string());
            return Ok(Ipv4Addr::from(self.base + n).to_string());
        }
        Err(Error::Exhausted(Ipv4Addr::from(self.base).to_string()))
    }
}

/// 64-bit FNV-1a.
pub(crate) fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The Service cluster IP pool: 10.96.0.0/12, `10.96.0.1` left to the `kubernetes` Service.
pub(crate) fn cluster_ip_pool() -> Pool {
    Pool::new(Ipv4Addr::new(10, 96, 0, 0), 12, 2)
}

/// The load-balancer pool (LoadBalancer Services and Ingresses): 172.18.0.0/16 from .1.10.
pub(crate) fn load_balancer_pool() -> Pool {
    Pool::new(Ipv4Addr::new(172, 18, 0, 0), 16, 266)
}

/// `namespace/name` of an object.
pub(crate) fn key(object: &Value) -> String {
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{ns}/{name}")
}

/// A Service's `spec.type` (default `ClusterIP`).
pub(crate) fn service_type(service: &Value) -> &str {
    service
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

/// Whether a Service needs a cluster IP allocated (`spec.clusterIP` unset or empty, not
/// headless, not ExternalName).
pub(crate) fn needs_cluster_ip(service: &Value) -> bool {
    if service_type(service) == "ExternalName" {
        return false;
    }
    match service.pointer("/spec/clusterIP").and_then(Value::as_str) {
        None | Some("") => true,
        Some(_) => false,
    }
}

/// The spec patch for a Service: `clusterIP`/`clusterIPs` when missing and node ports for
/// NodePort/LoadBalancer ports lacking one. `None` when nothing is missing.
pub(crate) fn service_spec_patch(
    service: &Value,
    cluster_ip: Option<&str>,
    seed: &str,
) -> Option<Value> {
    let mut spec = serde_json::Map::new();
    if let Some(ip) = cluster_ip {
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }
    let ty = service_type(service);
    if ty == "NodePort" || ty == "LoadBalancer" {
        let ports = service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut used: BTreeSet<i64> = ports
            .iter()
            .filter_map(|p| p["nodePort"].as_i64())
            .collect();
        if ports.iter().any(|p| p["nodePort"].as_i64().is_none()) {
            let mut out = Vec::new();
            for (i, port) in ports.iter().enumerate() {
                let mut port = port.clone();
                if port["nodePort"].as_i64().is_none() {
                    let mut n =
                        30000 + (fnv1a(&format!("{seed}/{}/{i}", key(service))) % 2768) as i64;
                    while used.contains(&n) {
                        n = if n >= 32767 { 30000 } else { n + 1 };
                    }
                    used.insert(n);
                    port["nodePort"] = json!(n);
                }
                out.push(port);
            }
            spec.insert("ports".into(), Value::Array(out));
        }
    }
    (!spec.is_empty()).then(|| json!({ "spec": spec }))
}

/// The `status.loadBalancer` to report for `ip`.
pub(crate) fn load_balancer_status(ip: &str, with_ip_mode: bool) -> Value {
    if with_ip_mode {
        json!({"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}})
    } else {
        json!({"loadBalancer": {"ingress": [{"ip": ip}]}})
    }
}

/// The load-balancer IP an object already reports, if any.
pub(crate) fn reported_load_balancer_ip(object: &Value) -> Option<String> {
    object
        .pointer("/status/loadBalancer/ingress/0/ip")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The status a PersistentVolumeClaim reports once bound.
pub(crate) fn bound_claim_status(claim: &Value) -> Value {
    let mut status = json!({"phase": "Bound"});
    if let Some(modes) = claim.pointer("/spec/accessModes") {
        status["accessModes"] = modes.clone();
    }
    if let Some(storage) = claim.pointer("/spec/resources/requests/storage") {
        status["capacity"] = json!({ "storage": storage });
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ips_are_deterministic_unique_and_in_range() {
        let mut a = cluster_ip_pool();
        let mut b = cluster_ip_pool();
        let ip1 = a.allocate("seed", "default/web").unwrap();
        assert_eq!(b.allocate("seed", "default/web").unwrap(), ip1);
        assert_eq!(
            a.allocate("seed", "default/web").unwrap(),
            ip1,
            "same key, same ip"
        );
        let ip: Ipv4Addr = ip1.parse().unwrap();
        assert!(u32::from(ip) >= u32::from(Ipv4Addr::new(10, 96, 0, 2)));
        assert!(u32::from(ip) < u32::from(Ipv4Addr::new(10, 112, 0, 0)));
        // A tiny pool forces collisions: still unique.
        let mut tiny = Pool::new(Ipv4Addr::new(10, 0, 0, 0), 29, 1);
        let ips: BTreeSet<String> = (0..6)
            .map(|i| tiny.allocate("s", &format!("ns/{i}")).unwrap())
            .collect();
        assert_eq!(ips.len(), 6);
        assert!(!ips.contains("10.0.0.0") && !ips.contains("10.0.0.7"));
        assert!(tiny.allocate("s", "ns/full").is_err());
    }

    #[test]
    fn marked_addresses_are_skipped() {
        let mut p = Pool::new(Ipv4Addr::new(10, 0, 0, 0), 30, 1);
        p.mark("10.0.0.1", "ns/a");
        assert_eq!(p.allocate("s", "ns/b").unwrap(), "10.0.0.2");
        assert_eq!(p.held_by("ns/a").as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn services() {
        let svc =
            json!({"metadata": {"namespace": "d", "name": "s"}, "spec": {"ports": [{"port": 80}]}});
        assert!(needs_cluster_ip(&svc));
        let headless = json!({"spec": {"clusterIP": "None"}});
        assert!(!needs_cluster_ip(&headless));
        assert!(!needs_cluster_ip(
            &json!({"spec": {"type": "ExternalName"}})
        ));
        let patch = service_spec_patch(&svc, Some("10.96.0.9"), "x").unwrap();
        assert_eq!(patch["spec"]["clusterIPs"][0], "10.96.0.9");
        assert!(patch["spec"].get("ports").is_none());
        let lb = json!({"metadata": {"namespace": "d", "name": "s"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.3", "ports": [{"port": 80}, {"port": 81, "nodePort": 30001}]}});
        let patch = service_spec_patch(&lb, None, "x").unwrap();
        let node_port = patch["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        assert!((30000..=32767).contains(&node_port) && node_port != 30001);
        assert_eq!(patch["spec"]["ports"][1]["nodePort"], 30001);
        assert!(
            service_spec_patch(&json!({"spec": {"clusterIP": "1.2.3.4"}}), None, "x").is_none()
        );
    }

    #[test]
    fn claims_bind() {
        let claim = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        let s = bound_claim_status(&claim);
        assert_eq!(s["phase"], "Bound");
        assert_eq!(s["capacity"]["storage"], "1Gi");
    }
}
