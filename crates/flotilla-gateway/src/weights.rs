//! The spread of requests over clusters: the `gateway.flotilla.io/cluster-weights`
//! annotation (`beijing-1=70,us-west-1=30`) and the smooth weighted round-robin that follows
//! it exactly (nginx's algorithm: over any 100 picks with weights 70/30, 70 and 30).

use std::collections::BTreeMap;

/// Why a weights annotation cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WeightsError {
    /// An entry is not `cluster=weight`.
    #[error("entry {0:?} is not CLUSTER=WEIGHT")]
    NotAPair(String),
    /// A weight is not a whole number from 0 to 1000000.
    #[error("weight {weight:?} of cluster {cluster:?} is not a whole number from 0 to 1000000")]
    BadWeight { cluster: String, weight: String },
    /// A cluster is named twice.
    #[error("cluster {0:?} is named twice")]
    Duplicate(String),
    /// Every weight is zero, or no entry at all.
    #[error("no cluster has a weight above 0")]
    AllZero,
}

/// Weights by cluster name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClusterWeights(pub BTreeMap<String, u64>);

impl ClusterWeights {
    /// Parses `a=70,b=30` (spaces around entries allowed).
    pub(crate) fn parse(text: &str) -> Result<ClusterWeights, WeightsError> {
        let mut weights = BTreeMap::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (cluster, weight) = entry
                .split_once('=')
                .map(|(c, w)| (c.trim(), w.trim()))
                .filter(|(c, _)| !c.is_empty())
                .ok_or_else(|| WeightsError::NotAPair(entry.to_string()))?;
            let value = weight
                .parse::<u64>()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| WeightsError::BadWeight {
                    cluster: cluster.to_string(),
                    weight: weight.to_string(),
                })?;
            if weights.insert(cluster.to_string(), value).is_some() {
                return Err(WeightsError::Duplicate(cluster.to_string()));
            }
        }
        if weights.values().all(|w| *w == 0) {
            return Err(WeightsError::AllZero);
        }
        Ok(ClusterWeights(weights))
    }

    /// The weight of `cluster` (0 when not named).
    pub(crate) fn of(&self, cluster: &str) -> u64 {
        self.0.get(cluster).copied().unwrap_or(0)
    }
}

/// Smooth weighted round-robin state for one backend.
#[derive(Debug, Default)]
pub(crate) struct Spread {
    current: BTreeMap<String, i64>,
}

impl Spread {
    /// Picks one of `candidates` (cluster, weight) and returns its index; weights of 0 are
    /// never picked. `None` when no candidate has a weight.
    pub(crate) fn pick(&mut self, candidates: &[(&str, u64)]) -> Option<usize> {
        let total: i64 = candidates.iter().map(|(_, w)| *w as i64).sum();
        if total == 0 {
            return None;
        }
        self.current
            .retain(|c, _| candidates.iter().any(|(name, _)| name == c));
        let mut best: Option<(usize, i64)> = None;
        for (i, (cluster, weight)) in candidates.iter().enumerate() {
            if *weight == 0 {
                continue;
            }
            let current = match self.current.get_mut(*cluster) {
                Some(c) => {
                    *c += *weight as i64;
                    *c
                }
                None => {
                    self.current.insert(cluster.to_string(), *weight as i64);
                    *weight as i64
                }
            };
            if best.is_none_or(|(_, b)| current > b) {
                best = Some((i, current));
            }
        }
        let chosen = best?.0;
        if let Some(c) = self.current.get_mut(candidates[chosen].0) {
            *c -= total;
        }
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let w = ClusterWeights::parse("beijing-1=70, us-west-1=30").unwrap();
        assert_eq!(
            (w.of("beijing-1"), w.of("us-west-1"), w.of("x")),
            (70, 30, 0)
        );
        for bad in ["a", "a=x", "=3", "a=1,a=2", "a=0", "", "a=-1"] {
            assert!(ClusterWeights::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spread_follows_weights_exactly() {
        let mut spread = Spread::default();
        let candidates = [("a", 70), ("b", 30), ("c", 0)];
        let mut counts = BTreeMap::new();
        for _ in 0..1000 {
            let chosen = spread.pick(&candidates).unwrap();
            *counts.entry(candidates[chosen].0).or_insert(0) += 1;
        }
        assert_eq!(counts.get("a"), Some(&700));
        assert_eq!(counts.get("b"), Some(&300));
        assert_eq!(counts.get("c"), None);
        assert_eq!(spread.pick(&[("c", 0)]), None);
    }
}
