//! Prometheus text: picking the `kube_*` families out of a member's `/metrics` and giving each
//! sample a `cluster` label, then writing every member's samples as one exposition.

use std::collections::BTreeMap;

use super::deflated::Deflated;

/// One metric family's samples from one member, with the `cluster` label already added.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Family {
    /// `# HELP` text.
    pub help: String,
    /// `# TYPE` (gauge, counter, ...).
    pub kind: String,
    /// Sample lines, `name{cluster="c",...} value`, each ending in `\n`: one buffer per
    /// family rather than a `String` per sample, deflated until it is read (`deflated.rs`).
    samples: Deflated,
}

impl Family {
    /// The sample lines, as one text.
    pub(crate) fn samples(&self) -> String {
        self.samples.text()
    }
}

/// Families by name.
pub(crate) type Families = BTreeMap<String, Family>;

/// The prefix of the families taken from members.
const WANTED_PREFIX: &str = "kube_";

/// Only these families are taken from members.
pub(crate) fn wanted(name: &str) -> bool {
    name.starts_with(WANTED_PREFIX)
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The family named `name`, created on first use (the name is copied only then).
fn family<'a>(families: &'a mut Families, name: &str) -> &'a mut Family {
    if !families.contains_key(name) {
        families.insert(name.to_string(), Family::default());
    }
    families.get_mut(name).expect("inserted above")
}

/// `# HELP NAME TEXT` or `# TYPE NAME KIND` of a wanted family: (name, text).
fn wanted_comment<'a>(line: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = line.strip_prefix(prefix)?;
    if !wanted(rest) {
        return None;
    }
    Some(rest.split_once(' ').unwrap_or((rest, "")))
}

/// The `kube_*` families of `text`, each sample labelled `cluster="cluster_name"` (see
/// [`Relabeler`]).
#[cfg(test)]
pub(crate) fn relabel(text: &str, cluster_name: &str) -> Families {
    let mut relabeler = Relabeler::new(cluster_name);
    for line in text.lines() {
        relabeler.line(line);
    }
    relabeler.finish()
}

/// Picks the `kube_*` families out of a member's exposition, a line at a time as it is read,
/// each sample labelled `cluster="NAME"`. Lines of other families are skipped on their first
/// bytes; a kept sample is copied once, into the open family's buffer, with the label spliced
/// in. A family's samples are contiguous in the text format, so each is deflated as soon as
/// the next one starts: a scrape in flight holds one family's text, not the member's.
pub(crate) struct Relabeler {
    families: Families,
    /// `cluster="NAME"`, escaped.
    cluster: String,
    /// The family whose samples `open_samples` collects.
    open: String,
    open_samples: String,
}

impl Relabeler {
    /// A relabeler for the member `cluster_name`.
    pub(crate) fn new(cluster_name: &str) -> Self {
        Relabeler {
            families: Families::new(),
            cluster: format!("cluster=\"{}\"", escape(cluster_name)),
            open: String::new(),
            open_samples: String::new(),
        }
    }

    /// Takes one line of the exposition (without its line end).
    pub(crate) fn line(&mut self, line: &str) {
        if line.starts_with('#') {
            if let Some((name, help)) = wanted_comment(line, "# HELP ") {
                family(&mut self.families, name).help = help.to_string();
            } else if let Some((name, kind)) = wanted_comment(line, "# TYPE ") {
                let kind = if kind.is_empty() { "untyped" } else { kind };
                family(&mut self.families, name).kind = kind.to_string();
            }
            return;
        }
        if !wanted(line) {
            return;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let (name, rest) = line.split_at(name_end);
        if name != self.open {
            self.close();
            self.open.push_str(name);
        }
        let out = &mut self.open_samples;
        out.reserve(line.len() + self.cluster.len() + 3);
        out.push_str(name);
        out.push('{');
        out.push_str(&self.cluster);
        match rest.strip_prefix('{') {
            Some(labels) if labels.starts_with('}') => out.push_str(labels),
            Some(labels) => {
                out.push(',');
                out.push_str(labels);
            }
            None => {
                out.push('}');
                out.push_str(rest);
            }
        }
        out.push('\n');
    }

    /// Deflates the open family's samples into it (after any it already has: a family split
    /// over the text still comes out whole) and empties the buffer for the next.
    fn close(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let family = family(&mut self.families, &self.open);
        family.samples = if family.samples.is_empty() {
            Deflated::of(&self.open_samples)
        } else {
            Deflated::of(&(family.samples.text() + &self.open_samples))
        };
        self.open.clear();
        self.open_samples.clear();
    }

    /// The families taken, each kept deflated until the next round: at fleet size most of
    /// what the hub holds for monitoring.
    pub(crate) fn finish(mut self) -> Families {
        self.close();
        self.families
    }
}

/// Every member's families as one Prometheus text exposition (one HELP/TYPE per family).
pub(crate) fn render<'a>(members: impl IntoIterator<Item = &'a Families>) -> String {
    let mut merged: BTreeMap<&str, (Option<&Family>, Vec<&Deflated>)> = BTreeMap::new();
    let mut size = 0;
    for families in members {
        for (name, family) in families {
            let entry = merged.entry(name).or_default();
            entry.0.get_or_insert(family);
            entry.1.push(&family.samples);
            size += family.samples.len();
        }
    }
    let mut out = String::with_capacity(size + merged.len() * 128);
    for (name, (family, samples)) in merged {
        if let Some(f) = family {
            let kind = if f.kind.is_empty() {
                "untyped"
            } else {
                &f.kind
            };
            for line in [
                format_args!("# HELP {name} {}\n", f.help),
                format_args!("# TYPE {name} {kind}\n"),
            ] {
                std::fmt::Write::write_fmt(&mut out, line).expect("writing to a String");
            }
        }
        for s in samples {
            out.push_str(&s.text());
        }
    }
    out
}

/// The value of a sample line.
pub fn sample_value(sample: &str) -> Option<f64> {
    sample.rsplit(' ').next()?.parse().ok()
}

/// The value of label `key` in a sample line.
pub fn label<'a>(sample: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("{key}=\"");
    let start = sample
        .match_indices(&needle)
        .find(|(i, _)| *i > 0 && matches!(sample.as_bytes()[i - 1], b'{' | b','))?
        .0
        + needle.len();
    let end = sample[start..].find('"')? + start;
    Some(&sample[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBER: &str = "# HELP kube_deployment_status_replicas_ready The number of ready replicas per deployment.\n\
# TYPE kube_deployment_status_replicas_ready gauge\n\
kube_deployment_status_replicas_ready{namespace=\"demo\",deployment=\"web\"} 2\n\
# HELP apiserver_request API requests\n\
# TYPE apiserver_request counter\n\
apiserver_request_total{verb=\"get\"} 7\n\
# HELP kube_node_info Information about a cluster node.\n\
# TYPE kube_node_info gauge\n\
kube_node_info{node=\"a\",kubelet_version=\"v1.33.0\"} 1\n\
# EOF\n";

    #[test]
    fn keeps_kube_families_and_adds_the_cluster_label() {
        let families = relabel(MEMBER, "us-west");
        assert_eq!(
            families.keys().collect::<Vec<_>>(),
            ["kube_deployment_status_replicas_ready", "kube_node_info"]
        );
        let ready = &families["kube_deployment_status_replicas_ready"];
        assert_eq!(ready.kind, "gauge");
        let text = ready.samples();
        let samples: Vec<&str> = text.lines().collect();
        assert_eq!(
            samples,
            [
                "kube_deployment_status_replicas_ready{cluster=\"us-west\",namespace=\"demo\",deployment=\"web\"} 2"
            ]
        );
        assert_eq!(label(samples[0], "deployment"), Some("web"));
        assert_eq!(label(samples[0], "cluster"), Some("us-west"));
        assert_eq!(sample_value(samples[0]), Some(2.0));
    }

    #[test]
    fn a_family_split_over_the_text_comes_out_whole() {
        let text = "kube_a{x=\"1\"} 1\nkube_b 2\nother 3\nkube_a{x=\"2\"} 4\n# TYPE kube_c gauge\n";
        let families = relabel(text, "m");
        assert_eq!(
            families["kube_a"].samples(),
            "kube_a{cluster=\"m\",x=\"1\"} 1\nkube_a{cluster=\"m\",x=\"2\"} 4\n"
        );
        assert_eq!(families["kube_b"].samples(), "kube_b{cluster=\"m\"} 2\n");
        assert_eq!(families["kube_c"].kind, "gauge");
        assert_eq!(families["kube_c"].samples(), "");
        assert!(!families.contains_key("other"));
    }

    #[test]
    fn renders_one_help_and_type_per_family_across_members() {
        let a = relabel(MEMBER, "a");
        let b = relabel(MEMBER, "b");
        let text = render([&a, &b]);
        assert_eq!(
            text.matches("# TYPE kube_node_info gauge").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("kube_node_info{cluster=\"a\",node=\"a\""),
            "{text}"
        );
        assert!(
            text.contains("kube_node_info{cluster=\"b\",node=\"a\""),
            "{text}"
        );
        assert!(!text.contains("apiserver_request"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn samples_without_labels_get_one() {
        let families = relabel("kube_up 1\nkube_x{} 3\n", "c\"1");
        assert_eq!(
            families["kube_up"].samples(),
            "kube_up{cluster=\"c\\\"1\"} 1\n"
        );
        assert_eq!(
            families["kube_x"].samples(),
            "kube_x{cluster=\"c\\\"1\"} 3\n"
        );
    }
}
