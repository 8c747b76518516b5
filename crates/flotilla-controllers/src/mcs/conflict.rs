//! Which exports of one `namespace/name` join the multi-cluster Service, per the MCS API:
//! the oldest ServiceExport (then the lowest cluster name) sets the Service's ports; an export
//! whose Service has other ports is in conflict (condition `Conflict` True, reason
//! `PortConflict`) and contributes no endpoints. An export without its Service is not valid
//! (condition `Valid` False, reason `NoService`).

use super::Export;

/// Condition type: the export names an existing Service.
pub(crate) const VALID: &str = "Valid";
/// Condition type: the export disagrees with the others.
pub(crate) const CONFLICT: &str = "Conflict";

/// A condition to set on a ServiceExport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExportCondition {
    /// The condition type, e.g. `Conflict` or `Valid`.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: &'static str,
    /// A CamelCase reason.
    pub reason: &'static str,
    /// A human-readable message.
    pub message: String,
}

/// The verdict on one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Its endpoints join the multi-cluster Service.
    pub joins: bool,
    /// The conditions to set on the ServiceExport.
    pub conditions: Vec<ExportCondition>,
}

/// Judges the exports of one `namespace/name` (any order); verdicts in the same order.
pub(crate) fn judge(exports: &[&Export]) -> Vec<Verdict> {
    let winner = exports
        .iter()
        .filter(|e| e.service_found)
        .min_by(|a, b| (&a.created, &a.cluster).cmp(&(&b.created, &b.cluster)));
    exports
        .iter()
        .map(|e| {
            if !e.service_found {
                return Verdict {
                    joins: false,
                    conditions: vec![
                        condition(VALID, "False", "NoService", format!("Service {}/{} not found", e.namespace, e.name)),
                        condition(CONFLICT, "False", "NoConflict", String::new()),
                    ],
                };
            }
            let valid = condition(VALID, "True", "Valid", "the Service is exported".into());
            match winner {
                Some(w) if w.ports != e.ports => Verdict {
                    joins: false,
                    conditions: vec![
                        valid,
                        condition(
                            CONFLICT,
                            "True",
                            "PortConflict",
                            format!(
                                "ports {} differ from {} exported first by cluster {}; this export's endpoints are left out",
                                describe(&e.ports),
                                describe(&w.ports),
                                w.cluster
                            ),
                        ),
                    ],
                },
                _ => Verdict {
                    joins: true,
                    conditions: vec![valid, condition(CONFLICT, "False", "NoConflict", String::new())],
                },
            }
        })
        .collect()
}

fn condition(
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
    message: String,
) -> ExportCondition {
    ExportCondition {
        type_,
        status,
        reason,
        message,
    }
}

fn describe(ports: &[super::Port]) -> String {
    let list: Vec<String> = ports
        .iter()
        .map(|p| format!("{}/{}", p.port, p.protocol))
        .collect();
    format!("[{}]", list.join(","))
}

#[cfg(test)]
mod tests {
    use super::super::Port;
    use super::*;

    fn export(cluster: &str, created: &str, port: i32, found: bool) -> Export {
        Export {
            cluster: cluster.into(),
            namespace: "shop".into(),
            name: "web".into(),
            created: created.into(),
            service_found: found,
            ports: vec![Port {
                name: "http".into(),
                port,
                target_port: port,
                protocol: "TCP".into(),
            }],
            endpoints: Vec::new(),
        }
    }

    #[test]
    fn the_oldest_export_sets_the_ports() {
        let a = export("a", "2026-01-01T00:00:01Z", 80, true);
        let b = export("b", "2026-01-01T00:00:00Z", 8080, true);
        let c = export("c", "2026-01-01T00:00:02Z", 8080, true);
        let d = export("d", "2026-01-01T00:00:00Z", 80, false);
        let v = judge(&[&a, &b, &c, &d]);
        assert_eq!(
            v.iter().map(|v| v.joins).collect::<Vec<_>>(),
            [false, true, true, false]
        );
        assert_eq!(v[0].conditions[1].reason, "PortConflict");
        assert!(v[0].conditions[1].message.contains("cluster b"));
        assert_eq!(
            (v[3].conditions[0].status, v[3].conditions[0].reason),
            ("False", "NoService")
        );
    }
}
