//! Randomised robustness checks for every engine, run by `cargo test` (the `fuzz/` targets go
//! further but need a nightly toolchain). A fixed-seed generator builds Kubernetes-shaped
//! documents and patches full of directives; every engine must answer without panicking and
//! keep its invariants.

use serde_json::{Map, Value, json};

use super::apply::{server_side_apply, update_managed_fields};
use super::*;
use crate::selector::{FieldSelector, LabelSelector};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "name",
    "image",
    "env",
    "value",
    "containers",
    "initContainers",
    "spec",
    "template",
    "metadata",
    "labels",
    "finalizers",
    "ownerReferences",
    "uid",
    "replicas",
    "ports",
    "containerPort",
    "volumes",
    "status",
    "conditions",
    "type",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/env",
    "$setElementOrder/finalizers",
    "$deleteFromPrimitiveList/finalizers",
];
const STRINGS: &[&str] = &["a", "b", "web", "delete", "replace", "merge", "", "x/y"];

fn value(rng: &mut Rng, depth: usize) -> Value {
    let choice = if depth == 0 {
        rng.below(4)
    } else {
        rng.below(7)
    };
    match choice {
        0 => Value::Null,
        1 => json!(rng.below(3) as i64),
        2 | 3 => json!(rng.pick(STRINGS)),
        4 => Value::Array((0..rng.below(4)).map(|_| value(rng, depth - 1)).collect()),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(5) {
                m.insert(rng.pick(KEYS).to_string(), value(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

/// A Deployment-shaped document with random holes and extras.
fn deployment(rng: &mut Rng) -> Value {
    let env: Vec<Value> = (0..rng.below(3))
        .map(|_| json!({"name": rng.pick(&["A", "B", "C"][..]), "value": value(rng, 1)}))
        .collect();
    let mut containers: Vec<Value> = (0..rng.below(3))
        .map(|_| json!({"name": rng.pick(&["web", "side"][..]), "image": rng.pick(STRINGS), "env": env.clone()}))
        .collect();
    if rng.below(4) == 0 {
        containers.push(value(rng, 2));
    }
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"app": rng.pick(STRINGS)}, "finalizers": [rng.pick(STRINGS)]},
        "spec": {"replicas": rng.below(4), "template": {"spec": {"containers": containers}}}
    });
    if rng.below(3) == 0 {
        let k = *rng.pick(KEYS);
        d["spec"][k] = value(rng, 3);
    }
    d
}

fn has_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.keys().any(|k| {
                k == "$patch"
                    || k == "$retainKeys"
                    || k.starts_with("$setElementOrder/")
                    || k.starts_with("$deleteFromPrimitiveList/")
            }) || m.values().any(has_directive)
        }
        Value::Array(a) => a.iter().any(has_directive),
        _ => false,
    }
}

fn pointer(rng: &mut Rng) -> String {
    let mut p = String::new();
    for _ in 0..rng.below(4) {
        p.push('/');
        const SEGMENTS: &[&str] = &[
            "spec", "metadata", "labels", "0", "1", "-", "replicas", "a~1b", "x",
        ];
        let segment: &&str = rng.pick(SEGMENTS);
        p.push_str(segment);
    }
    p
}

#[test]
fn engines_never_panic_and_keep_invariants() {
    let keys = builtin_merge_keys("apps", "Deployment").expect("built-in");
    let mut rng = Rng(0x0005_eedf_10a7_111a);
    for round in 0..3000 {
        let orig = if round % 2 == 0 {
            deployment(&mut rng)
        } else {
            value(&mut rng, 4)
        };
        let patch = if round % 3 == 0 {
            deployment(&mut rng)
        } else {
            value(&mut rng, 4)
        };

        if let Ok(once) = merge_patch(&orig, &patch) {
            assert_eq!(
                merge_patch(&once, &patch).as_ref(),
                Ok(&once),
                "merge patch idempotent"
            );
        }

        if let Ok(out) = strategic_merge(&orig, &patch, &keys)
            && !has_directive(&orig)
        {
            assert!(!has_directive(&out), "directive leaked: {patch} -> {out}");
        }

        let ops: Vec<Value> = (0..rng.below(4))
            .map(|_| {
                let op = *rng.pick(&["add", "remove", "replace", "move", "copy", "test", "bad"][..]);
                json!({"op": op, "path": pointer(&mut rng), "from": pointer(&mut rng), "value": value(&mut rng, 2)})
            })
            .collect();
        let _ = json_patch(&orig, &Value::Array(ops));

        let applied = deployment(&mut rng);
        let live = if round % 4 == 0 { None } else { Some(&orig) };
        let t0 = "2024-01-01T00:00:00Z";
        let t1 = "2024-01-01T00:05:00Z";
        if let Ok(once) = server_side_apply(live, &applied, "m", true, &keys, t0) {
            // A re-apply by the same manager is a no-op: same bytes, times unchanged.
            let twice = server_side_apply(Some(&once), &applied, "m", false, &keys, t1)
                .expect("re-apply without force has no conflict");
            assert_eq!(
                serde_json::to_string(&once).unwrap(),
                serde_json::to_string(&twice).unwrap(),
                "re-apply changed the object: {applied}"
            );
            assert_eq!(
                apply::dangling_fields(&once),
                Vec::<String>::new(),
                "{applied}"
            );
            let updated = update_managed_fields(Some(&once), &patch, "u", &keys, t1);
            assert_eq!(
                apply::dangling_fields(&updated),
                Vec::<String>::new(),
                "{patch}"
            );
            if let Ok(again) = server_side_apply(Some(&updated), &applied, "m", false, &keys, t1) {
                assert_eq!(apply::dangling_fields(&again), Vec::<String>::new());
            }
        }
    }
}

/// A create that names no managers gives its manager every field it sets: the shortcut the
/// write path takes for it agrees with the general comparison, on any document.
#[test]
fn create_shortcut_owns_what_the_general_path_owns() {
    let keys = builtin_merge_keys("apps", "Deployment").expect("built-in");
    let mut rng = Rng(0x00c0_ffee_5eed_0001);
    for round in 0..3000 {
        let doc = if round % 2 == 0 {
            deployment(&mut rng)
        } else {
            value(&mut rng, 5)
        };
        if let Err(e) = apply::create_shortcut_agrees(&doc, &keys) {
            panic!("{doc}: {e}");
        }
    }
}

#[test]
fn selector_parsers_never_panic() {
    let alphabet: Vec<char> = "ab=!,() \t\x0cinotn<>-_./0\\".chars().collect();
    let mut rng = Rng(42);
    for _ in 0..20000 {
        let s: String = (0..rng.below(12)).map(|_| *rng.pick(&alphabet)).collect();
        if let Ok(sel) = LabelSelector::parse(&s) {
            let printed = sel.to_string();
            let again = LabelSelector::parse(&printed).expect("printed selector parses");
            assert_eq!(again.to_string(), printed, "from {s:?}");
        }
        if let Ok(sel) = FieldSelector::parse(&s) {
            let again =
                FieldSelector::parse(&sel.to_string()).expect("printed field selector parses");
            assert_eq!(again, sel, "from {s:?}");
        }
    }
}

/// Long lists (a 3 MiB body holds tens of thousands of items) go through every engine; the
/// engines index lists instead of scanning them, so this stays fast. No timing is asserted.
#[test]
fn long_lists_are_handled() {
    let keys = builtin_merge_keys("apps", "Deployment").expect("built-in");
    let n = 5_000;
    let env = |from: usize, value: &str| -> Vec<Value> {
        (from..from + n)
            .map(|i| json!({"name": format!("E{i}"), "value": value}))
            .collect()
    };
    let doc = |env: Vec<Value>| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "env": env}]}}}})
    };
    let live = doc(env(0, "a"));
    let patched = strategic_merge(&live, &doc(env(n / 2, "b")), &keys).unwrap();
    let merged_env = &patched["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(merged_env.as_array().map(Vec::len), Some(n + n / 2));

    let applied =
        server_side_apply(None, &live, "a", false, &keys, "2024-01-01T00:00:00Z").unwrap();
    let other = server_side_apply(
        Some(&applied),
        &doc(env(n / 2, "a")),
        "b",
        false,
        &keys,
        "2024-01-01T00:00:01Z",
    )
    .unwrap();
    // "a" drops everything; what "b" co-owns stays.
    let mut empty = doc(Vec::new());
    empty["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .shift_remove("env");
    let pruned = server_side_apply(
        Some(&other),
        &empty,
        "a",
        false,
        &keys,
        "2024-01-01T00:00:02Z",
    )
    .unwrap();
    let left = &pruned["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(left.as_array().map(Vec::len), Some(n));
    let _ = update_managed_fields(Some(&pruned), &applied, "c", &keys, "2024-01-01T00:00:03Z");
}
