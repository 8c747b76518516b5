//! The last hour of fleet metrics kept in the hub's memory: ready replicas per cluster (one
//! point per scrape) and the durations of application rollouts (workflow start to end).

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Value, json};

/// How far back the history reaches, in seconds.
pub(crate) const WINDOW_SECONDS: i64 = 3600;

/// One finished rollout.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rollout {
    /// Application namespace.
    pub namespace: String,
    /// Application name.
    pub name: String,
    /// The revision the workflow ran.
    pub revision: String,
    /// When the workflow ended (unix seconds).
    pub ended: i64,
    /// Start to end, in seconds.
    pub seconds: f64,
}

/// The in-memory history.
#[derive(Debug, Default)]
pub(crate) struct History {
    ready: BTreeMap<String, VecDeque<(i64, f64)>>,
    rollouts: Vec<Rollout>,
}

impl History {
    /// Records `ready` replicas of every scraped cluster at `now` and forgets points and
    /// rollouts older than the window (clusters with no point left disappear).
    pub(crate) fn record_ready(&mut self, now: i64, ready: &BTreeMap<String, f64>) {
        for (cluster, value) in ready {
            self.ready
                .entry(cluster.clone())
                .or_default()
                .push_back((now, *value));
        }
        for points in self.ready.values_mut() {
            while points
                .front()
                .is_some_and(|(t, _)| now - t > WINDOW_SECONDS)
            {
                points.pop_front();
            }
        }
        self.ready.retain(|_, p| !p.is_empty());
        self.rollouts.retain(|r| now - r.ended <= WINDOW_SECONDS);
    }

    /// Records a rollout once (by namespace, name and revision); keeps the last hour's.
    pub(crate) fn record_rollout(&mut self, now: i64, rollout: Rollout) {
        let known = self.rollouts.iter().any(|r| {
            r.namespace == rollout.namespace
                && r.name == rollout.name
                && r.revision == rollout.revision
        });
        if !known && now - rollout.ended <= WINDOW_SECONDS {
            self.rollouts.push(rollout);
            self.rollouts.sort_by_key(|r| r.ended);
        }
        self.rollouts.retain(|r| now - r.ended <= WINDOW_SECONDS);
    }

    /// `{"readyReplicas": {cluster: [[unix, value], ...]}, "rollouts": [...]}`
    pub(crate) fn to_json(&self) -> Value {
        let ready: serde_json::Map<String, Value> = self
            .ready
            .iter()
            .map(|(c, p)| {
                (
                    c.clone(),
                    json!(p.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>()),
                )
            })
            .collect();
        let rollouts: Vec<Value> = self
            .rollouts
            .iter()
            .map(|r| {
                json!({"namespace": r.namespace, "name": r.name, "revision": r.revision,
                       "ended": r.ended, "seconds": r.seconds})
            })
            .collect();
        json!({"windowSeconds": WINDOW_SECONDS, "readyReplicas": ready, "rollouts": rollouts})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_older_than_an_hour_are_dropped() {
        let mut h = History::default();
        h.record_ready(0, &[("a".to_string(), 1.0)].into());
        h.record_ready(
            1800,
            &[("a".to_string(), 2.0), ("b".to_string(), 5.0)].into(),
        );
        h.record_ready(3700, &[("b".to_string(), 6.0)].into());
        let j = h.to_json();
        assert_eq!(j["readyReplicas"]["a"], json!([[1800, 2.0]]));
        assert_eq!(j["readyReplicas"]["b"], json!([[1800, 5.0], [3700, 6.0]]));
        h.record_ready(5500, &BTreeMap::new());
        assert!(h.to_json()["readyReplicas"].get("a").is_none());
    }

    #[test]
    fn a_rollout_is_recorded_once() {
        let mut h = History::default();
        let r = Rollout {
            namespace: "demo".into(),
            name: "web".into(),
            revision: "web-v1".into(),
            ended: 100,
            seconds: 4.5,
        };
        h.record_rollout(100, r.clone());
        h.record_rollout(110, r);
        assert_eq!(h.rollouts.len(), 1);
        assert_eq!(h.to_json()["rollouts"][0]["seconds"], json!(4.5));
        // A scrape round an hour later forgets it, with no rollout recorded since.
        h.record_ready(100 + WINDOW_SECONDS + 1, &BTreeMap::new());
        assert!(h.rollouts.is_empty());
    }
}
