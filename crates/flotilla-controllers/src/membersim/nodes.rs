//! The member's simulated Nodes and its address plan: each member gets a pod CIDR of its own
//! (a /20 in 10.128.0.0/9, from its name, so members of one process never overlap), split
//! between its Nodes; each Node gets a host IP in 100.64.0.0/10. Pod IPs are handed out
//! round-robin within the Node's block, like a host-local IPAM.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::network::fnv1a;

/// Members that fit in 10.128.0.0/9 with a /20 each.
const MEMBER_SLOTS: u64 = 2048;
/// Addresses per member (a /20).
const MEMBER_BLOCK: u32 = 4096;
/// The most Nodes a member simulates.
pub(crate) const MAX_NODES: usize = 16;
/// The kubelet version simulated Nodes report.
pub(crate) const KUBELET_VERSION: &str = "v1.33.0";

/// Where a member's Nodes and Pods live on the (simulated) network.
#[derive(Debug, Clone)]
pub(crate) struct AddressPlan {
    pub cluster: String,
    /// Index of the member's /20 in 10.128.0.0/9.
    slot: u32,
    nodes: usize,
}

/// A member's slot: `name-N` (as `flotilla member --count` names them) takes N slots after
/// its prefix's hash, so one process's members are consecutive and distinct.
fn member_slot(name: &str) -> u32 {
    let (prefix, n) = match name.rsplit_once('-') {
        Some((p, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (p, n.parse::<u64>().unwrap_or(0))
        }
        _ => (name, 0),
    };
    ((fnv1a(prefix).wrapping_add(n)) % MEMBER_SLOTS) as u32
}

impl AddressPlan {
    /// The plan of member `cluster` with `nodes` Nodes (1 to 16).
    pub(crate) fn new(cluster: &str, nodes: usize) -> AddressPlan {
        AddressPlan {
            cluster: if cluster.is_empty() {
                "sim".into()
            } else {
                cluster.to_string()
            },
            slot: member_slot(cluster),
            nodes: nodes.clamp(1, MAX_NODES),
        }
    }

    /// How many Nodes.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes
    }

    /// Node `i`'s name.
    pub(crate) fn node_name(&self, i: usize) -> String {
        format!("{}-node-{}", self.cluster, i + 1)
    }

    /// The index of a Node by name.
    pub(crate) fn node_index(&self, name: &str) -> Option<usize> {
        (0..self.nodes).find(|&i| self.node_name(i) == name)
    }

    /// Node `i`'s host IP.
    pub(crate) fn host_ip(&self, i: usize) -> Ipv4Addr {
        let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
        Ipv4Addr::from(base + self.slot * 16 + i as u32 + 1)
    }

    fn block_size(&self) -> u32 {
        MEMBER_BLOCK / (self.nodes as u32).next_power_of_two()
    }

    /// The first address of Node `i`'s pod block.
    fn block_base(&self, i: usize) -> u32 {
        u32::from(Ipv4Addr::new(10, 128, 0, 0))
            + self.slot * MEMBER_BLOCK
            + i as u32 * self.block_size()
    }

    /// The member's pod CIDR.
    pub(crate) fn pod_cidr(&self) -> String {
        format!("{}/20", Ipv4Addr::from(self.block_base(0)))
    }

    /// Node `i`'s pod CIDR.
    pub(crate) fn node_pod_cidr(&self, i: usize) -> String {
        let prefix = 32 - self.block_size().trailing_zeros();
        format!("{}/{prefix}", Ipv4Addr::from(self.block_base(i)))
    }

    /// The Node object `i`: Ready, with addresses, capacity and node info.
    pub(crate) fn node(&self, i: usize) -> Value {
        let name = self.node_name(i);
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                },
            },
            "spec": {"podCIDR": self.node_pod_cidr(i), "podCIDRs": [self.node_pod_cidr(i)]},
        })
    }

    /// Node `i`'s status.
    pub(crate) fn node_status(&self, i: usize, now: &str) -> Value {
        let condition = |type_: &str, status: &str, reason: &str, message: &str| {
            json!({
                "type": type_, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now,
            })
        };
        let resources = json!({
            "cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi",
        });
        json!({
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                          "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                          "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID",
                          "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.host_ip(i).to_string()},
                {"type": "Hostname", "address": self.node_name(i)},
            ],
            "capacity": resources,
            "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": format!("{:032x}", u128::from(fnv1a(&self.node_name(i)))),
                "systemUUID": format!("{:032x}", u128::from(fnv1a(&self.node_name(i)))),
                "bootID": "",
                "kernelVersion": "6.1.0-flotilla",
                "osImage": "Flotilla simulated node",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        })
    }
}

/// Pod IPs in use, per Node, handed out round-robin.
#[derive(Debug)]
pub(crate) struct PodAddresses {
    plan: AddressPlan,
    used: Vec<HashSet<u32>>,
    next: Vec<u32>,
}

impl PodAddresses {
    /// No address in use yet.
    pub(crate) fn new(plan: AddressPlan) -> PodAddresses {
        let n = plan.node_count();
        PodAddresses {
            plan,
            used: vec![HashSet::new(); n],
            next: vec![2; n],
        }
    }

    /// Marks `ip` as in use (on whichever Node's block it falls in).
    pub(crate) fn mark(&mut self, ip: &str) {
        let Ok(ip) = ip.parse::<Ipv4Addr>() else {
            return;
        };
        let ip = u32::from(ip);
        for i in 0..self.plan.node_count() {
            let off = ip.wrapping_sub(self.plan.block_base(i));
            if off < self.plan.block_size() {
                self.used[i].insert(off);
            }
        }
    }

    /// Forgets every address of Node `i` (before marking the live ones again).
    pub(crate) fn clear(&mut self, i: usize) {
        if let Some(u) = self.used.get_mut(i) {
            u.clear();
        }
    }

    /// The next free address on Node `i`, or `None` once the cursor went round the block
    /// (then the caller clears and re-marks the live Pods' addresses and asks again).
    pub(crate) fn allocate(&mut self, i: usize) -> Option<Ipv4Addr> {
        let size = self.plan.block_size();
        let used = self.used.get_mut(i)?;
        while self.next[i] < size - 1 {
            let off = self.next[i];
            self.next[i] += 1;
            if used.insert(off) {
                return Some(Ipv4Addr::from(self.plan.block_base(i) + off));
            }
        }
        self.next[i] = 2;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_one_process_get_distinct_pod_cidrs() {
        let cidrs: HashSet<String> = (1..=1000)
            .map(|i| AddressPlan::new(&format!("m-{i}"), 1).pod_cidr())
            .collect();
        assert_eq!(cidrs.len(), 1000);
        assert_ne!(
            AddressPlan::new("east", 1).pod_cidr(),
            AddressPlan::new("west", 1).pod_cidr()
        );
    }

    #[test]
    fn nodes_split_the_member_block() {
        let plan = AddressPlan::new("m-1", 3);
        assert!(plan.node_pod_cidr(0).ends_with("/22"));
        assert_ne!(plan.node_pod_cidr(0), plan.node_pod_cidr(1));
        assert_eq!(plan.node_name(2), "m-1-node-3");
        assert_eq!(plan.node_index("m-1-node-2"), Some(1));
        assert_eq!(plan.node(0)["spec"]["podCIDR"], plan.node_pod_cidr(0));
        let status = plan.node_status(1, "t");
        assert_eq!(status["conditions"][3]["type"], "Ready");
        assert_eq!(
            status["addresses"][0]["address"],
            plan.host_ip(1).to_string()
        );
    }

    #[test]
    fn pod_addresses_are_unique_and_reused_after_a_sweep() {
        let plan = AddressPlan::new("m-1", 16);
        let mut pool = PodAddresses::new(plan);
        let first = pool.allocate(0).unwrap();
        pool.mark("10.0.0.1");
        let mut seen = HashSet::from([first]);
        while let Some(ip) = pool.allocate(0) {
            assert!(seen.insert(ip), "{ip} twice");
        }
        assert_eq!(seen.len(), 256 - 3);
        pool.clear(0);
        pool.mark(&first.to_string());
        let again = pool.allocate(0).unwrap();
        assert_ne!(again, first);
    }
}
