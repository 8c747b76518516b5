//! Render: components and traits → the Kubernetes objects to dispatch. Pure, no I/O.
//!
//! `ref-objects` copies come from a snapshot of hub objects the caller fetched first
//! ([`ref_object_queries`] says which); the snapshot is part of the application revision.

use std::collections::BTreeMap;

use flotilla_apis::{ApplicationComponent, ApplicationTrait, labels};
use flotilla_core::kinds;
use serde_json::{Map, Value, json};

/// Why a component could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Error {
    /// The component type is not one Flotilla knows.
    #[error("component {component}: unknown component type {component_type:?}")]
    UnknownComponentType {
        /// Component name.
        component: String,
        /// The type asked for.
        component_type: String,
    },
    /// The trait type is not one Flotilla knows.
    #[error("component {component}: unknown trait type {trait_type:?}")]
    UnknownTraitType {
        /// Component name.
        component: String,
        /// The type asked for.
        trait_type: String,
    },
    /// Properties are missing or have the wrong shape.
    #[error("component {component}: {message}")]
    InvalidProperties {
        /// Component name.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// A `ref-objects` entry matched no hub object.
    #[error("component {component}: {what} not found")]
    RefObjectNotFound {
        /// Component name.
        component: String,
        /// `deployments.apps "demo"` and the like.
        what: String,
    },
}

/// `Result` of rendering.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// One rendered object and the trait (if any) it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RenderedObject {
    /// The object (apiVersion, kind, metadata, ...).
    pub object: Value,
    /// The trait that produced it; `None` for the component's own objects.
    pub trait_type: Option<String>,
}

/// One rendered component.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RenderedComponent {
    /// Component name.
    pub name: String,
    /// Component type.
    pub component_type: String,
    /// Everything to dispatch, the workload first when there is one.
    pub objects: Vec<RenderedObject>,
    /// The trait types, in order (for health and status).
    pub traits: Vec<ApplicationTrait>,
}

/// A hub object that a `ref-objects` component copies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RefObjectQuery {
    /// `apps/v1`, `v1`, ...
    pub api_version: String,
    /// `Deployment`, ...
    pub kind: String,
    /// Plural resource name (`deployments`).
    pub plural: String,
    /// Namespace (the application's unless given).
    pub namespace: String,
    /// A single object by name...
    pub name: Option<String>,
    /// ...or every object with these labels.
    pub label_selector: Option<BTreeMap<String, String>>,
}

/// The plural resource name of a kind (from the kind table, `flotilla_core::kinds`; otherwise
/// the lower-case kind in kube-style English plural).
pub(crate) fn plural_of(api_version: &str, kind: &str) -> String {
    kinds::plural_of(api_version, kind)
}

/// `(plural, namespaced)` of a well-known kind; `None` for kinds that need discovery.
pub(crate) fn known_kind(api_version: &str, kind: &str) -> Option<(String, bool)> {
    kinds::find_api_version(api_version, kind).map(|k| (k.plural.to_string(), k.namespaced()))
}

/// Whether objects of this kind live in a namespace (unknown kinds are assumed namespaced).
pub(crate) fn is_namespaced(api_version: &str, kind: &str) -> bool {
    kinds::find_api_version(api_version, kind).is_none_or(|k| k.namespaced())
}

/// `(apiVersion, kind, plural)` of a resource named by `resource` (plural, singular or short
/// form) and `group`.
fn resolve_resource(resource: &str, group: &str) -> Option<(String, String, String)> {
    kinds::find_resource(group, resource)
        .map(|k| (k.api_version(), k.kind.to_string(), k.plural.to_string()))
}

fn invalid(component: &str, message: impl Into<String>) -> Error {
    Error::InvalidProperties {
        component: component.to_string(),
        message: message.into(),
    }
}

fn properties_of(component: &ApplicationComponent) -> Map<String, Value> {
    component
        .properties
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The hub objects the `ref-objects` components of `components` copy.
pub(crate) fn ref_object_queries(
    components: &[ApplicationComponent],
    app_namespace: &str,
) -> Result<Vec<RefObjectQuery>> {
    let mut queries = Vec::new();
    for component in components
        .iter()
        .filter(|c| c.component_type == "ref-objects")
    {
        let properties = properties_of(component);
        let objects = properties
            .get("objects")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(&component.name, "ref-objects needs properties.objects"))?;
        for entry in objects {
            queries.push(ref_query(&component.name, entry, app_namespace)?);
        }
    }
    queries.sort();
    queries.dedup();
    Ok(queries)
}

fn ref_query(component: &str, entry: &Value, app_namespace: &str) -> Result<RefObjectQuery> {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
    let (api_version, kind, plural) =
        if let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) {
            let plural = plural_of(&api_version, &kind);
            (api_version, kind, plural)
        } else if let Some(resource) = text("resource") {
            let group = text("group").unwrap_or_default();
            resolve_resource(&resource, &group).ok_or_else(|| {
                invalid(
                    component,
                    format!("ref-objects: unknown resource {resource:?} in group {group:?}"),
                )
            })?
        } else {
            return Err(invalid(
                component,
                "ref-objects: each object needs apiVersion and kind, or resource",
            ));
        };
    let label_selector = entry
        .get("labelSelector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect::<BTreeMap<_, _>>()
        });
    // As in KubeVela: an entry with neither name nor selector names the component's object.
    let name = text("name").or_else(|| label_selector.is_none().then(|| component.to_string()));
    Ok(RefObjectQuery {
        api_version,
        kind,
        plural,
        namespace: text("namespace").unwrap_or_else(|| app_namespace.to_string()),
        name,
        label_selector,
    })
}

/// Whether a hub object answers a query.
pub(crate) fn query_matches(query: &RefObjectQuery, object: &Value) -> bool {
    let meta = &object["metadata"];
    if object["apiVersion"].as_str() != Some(query.api_version.as_str())
        || object["kind"].as_str() != Some(query.kind.as_str())
    {
        return false;
    }
    if is_namespaced(&query.api_version, &query.kind)
        && meta["namespace"].as_str() != Some(query.namespace.as_str())
    {
        return false;
    }
    if let Some(name) = &query.name
        && meta["name"].as_str() != Some(name.as_str())
    {
        return false;
    }
    if let Some(selector) = &query.label_selector {
        return selector
            .iter()
            .all(|(k, v)| meta["labels"][k].as_str() == Some(v.as_str()));
    }
    true
}

/// A copy of a hub object fit to dispatch: server-set fields stripped.
pub(crate) fn strip_for_copy(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "resourceVersion",
            "uid",
            "ownerReferences",
            "managedFields",
            "creationTimestamp",
            "generation",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            annotations.remove("deployment.kubernetes.io/revision");
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if let Some(obj) = copy.as_object_mut() {
        obj.remove("status");
    }
    if copy["kind"] == "Service"
        && copy["apiVersion"] == "v1"
        && let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    copy
}

/// Renders one component with its traits. `referred` is the snapshot of hub objects
/// (`ref-objects`); `app_name` labels pods.
pub(crate) fn render_component(
    component: &ApplicationComponent,
    app_name: &str,
    app_namespace: &str,
    referred: &[Value],
) -> Result<RenderedComponent> {
    if component.name.is_empty() {
        return Err(invalid("", "every component needs a name"));
    }
    let mut objects = match component.component_type.as_str() {
        "webservice" => render_webservice(component, app_name)?,
        "k8s-objects" => render_k8s_objects(component)?,
        "ref-objects" => render_ref_objects(component, app_namespace, referred)?,
        other => {
            return Err(Error::UnknownComponentType {
                component: component.name.clone(),
                component_type: other.to_string(),
            });
        }
    };
    for t in &component.traits {
        apply_trait(component, t, &mut objects)?;
    }
    Ok(RenderedComponent {
        name: component.name.clone(),
        component_type: component.component_type.clone(),
        objects,
        traits: component.traits.clone(),
    })
}

fn render_k8s_objects(component: &ApplicationComponent) -> Result<Vec<RenderedObject>> {
    let properties = properties_of(component);
    let objects = properties
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(&component.name, "k8s-objects needs properties.objects"))?;
    objects
        .iter()
        .map(|o| {
            if o["apiVersion"].as_str().is_none_or(str::is_empty)
                || o["kind"].as_str().is_none_or(str::is_empty)
            {
                return Err(invalid(
                    &component.name,
                    "k8s-objects: every object needs apiVersion and kind",
                ));
            }
            let mut object = o.clone();
            // As in KubeVela: an object without a name takes the component's.
            if object["metadata"]["name"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                if !object["metadata"].is_object() {
                    object["metadata"] = json!({});
                }
                object["metadata"]["name"] = json!(component.name);
            }
            Ok(RenderedObject {
                object,
                trait_type: None,
            })
        })
        .collect()
}

fn render_ref_objects(
    component: &ApplicationComponent,
    app_namespace: &str,
    referred: &[Value],
) -> Result<Vec<RenderedObject>> {
    let properties = properties_of(component);
    let entries = properties
        .get("objects")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(&component.name, "ref-objects needs properties.objects"))?;
    let mut out = Vec::new();
    for entry in entries {
        let query = ref_query(&component.name, entry, app_namespace)?;
        let matched: Vec<&Value> = referred
            .iter()
            .filter(|o| query_matches(&query, o))
            .collect();
        if matched.is_empty() && query.name.is_some() {
            let (group, _) = flotilla_core::resource::split_api_version(&query.api_version);
            let resource = if group.is_empty() {
                query.plural.clone()
            } else {
                format!("{}.{group}", query.plural)
            };
            return Err(Error::RefObjectNotFound {
                component: component.name.clone(),
                what: format!("{resource} {:?}", query.name.clone().unwrap_or_default()),
            });
        }
        out.extend(matched.into_iter().map(|o| RenderedObject {
            object: strip_for_copy(o),
            trait_type: None,
        }));
    }
    Ok(out)
}

fn as_i64(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn string_map(value: Option<&Value>) -> Map<String, Value> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), Value::String(text))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A webservice port after defaulting.
struct Port {
    port: i64,
    container_port: i64,
    name: String,
    protocol: String,
    expose: bool,
}

fn webservice_ports(component: &str, properties: &Map<String, Value>) -> Result<Vec<Port>> {
    let mut ports = Vec::new();
    if let Some(list) = properties.get("ports") {
        let list = list
            .as_array()
            .ok_or_else(|| invalid(component, "ports must be a list"))?;
        for p in list {
            let port = as_i64(&p["port"])
                .ok_or_else(|| invalid(component, "every entry of ports needs a numeric port"))?;
            let container_port = p.get("containerPort").and_then(as_i64).unwrap_or(port);
            let protocol = p["protocol"].as_str().unwrap_or("TCP").to_string();
            let name = p["name"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("port-{port}"));
            ports.push(Port {
                port,
                container_port,
                name,
                protocol,
                expose: p["expose"].as_bool().unwrap_or(false),
            });
        }
    } else if let Some(port) = properties.get("port") {
        let port = as_i64(port).ok_or_else(|| invalid(component, "port must be a number"))?;
        ports.push(Port {
            port,
            container_port: port,
            name: format!("port-{port}"),
            protocol: "TCP".into(),
            expose: false,
        });
    }
    Ok(ports)
}

fn render_env(component: &str, env: &Value) -> Result<Vec<Value>> {
    let list = env
        .as_array()
        .ok_or_else(|| invalid(component, "env must be a list"))?;
    list.iter()
        .map(|e| {
            let name = e["name"]
                .as_str()
                .ok_or_else(|| invalid(component, "every env entry needs a name"))?;
            let mut out = json!({"name": name});
            if let Some(value) = e.get("value") {
                out["value"] = match value {
                    Value::String(_) => value.clone(),
                    other => Value::String(other.to_string()),
                };
            } else if let Some(from) = e.get("valueFrom") {
                let mut value_from = Map::new();
                for (src, dst) in [
                    ("secretKeyRef", "secretKeyRef"),
                    ("configMapKeyRef", "configMapKeyRef"),
                ] {
                    if let Some(r) = from.get(src) {
                        value_from.insert(dst.into(), json!({"name": r["name"], "key": r["key"]}));
                    }
                }
                if value_from.is_empty() {
                    return Err(invalid(
                        component,
                        format!("env {name}: valueFrom needs secretKeyRef or configMapKeyRef"),
                    ));
                }
                out["valueFrom"] = Value::Object(value_from);
            }
            Ok(out)
        })
        .collect()
}

fn render_webservice(
    component: &ApplicationComponent,
    app_name: &str,
) -> Result<Vec<RenderedObject>> {
    let name = component.name.as_str();
    let properties = properties_of(component);
    let image = properties
        .get("image")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(name, "webservice needs properties.image"))?;
    let ports = webservice_ports(name, &properties)?;

    let mut container = json!({"name": name, "image": image});
    if !ports.is_empty() {
        container["ports"] = ports
            .iter()
            .map(|p| json!({"containerPort": p.container_port, "name": p.name, "protocol": p.protocol}))
            .collect();
    }
    if let Some(policy) = properties.get("imagePullPolicy").and_then(Value::as_str) {
        container["imagePullPolicy"] = json!(policy);
    }
    if let Some(cmd) = properties.get("cmd") {
        container["command"] = cmd.clone();
    }
    if let Some(args) = properties.get("args") {
        container["args"] = args.clone();
    }
    if let Some(env) = properties.get("env") {
        container["env"] = Value::Array(render_env(name, env)?);
    }
    let mut resources = Map::new();
    for key in ["cpu", "memory"] {
        if let Some(v) = properties.get(key) {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            resources
                .entry("requests")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|m| m.insert(key.into(), json!(v)));
            resources
                .entry("limits")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|m| m.insert(key.into(), json!(v)));
        }
    }
    if !resources.is_empty() {
        container["resources"] = Value::Object(resources);
    }
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some(vm) = properties.get("volumeMounts").and_then(Value::as_object) {
        for (kind, list) in vm {
            for v in list.as_array().into_iter().flatten() {
                let vol_name = v["name"]
                    .as_str()
                    .ok_or_else(|| invalid(name, "every volume mount needs a name"))?;
                let mount_path = v["mountPath"]
                    .as_str()
                    .ok_or_else(|| invalid(name, "every volume mount needs a mountPath"))?;
                mounts.push(json!({"name": vol_name, "mountPath": mount_path}));
                let source = match kind.as_str() {
                    "pvc" => json!({"persistentVolumeClaim": {"claimName": v["claimName"]}}),
                    "configMap" => json!({"configMap": {"name": v["cmName"]}}),
                    "secret" => json!({"secret": {"secretName": v["secretName"]}}),
                    "emptyDir" => json!({"emptyDir": {}}),
                    "hostPath" => json!({"hostPath": {"path": v["path"]}}),
                    other => {
                        return Err(invalid(
                            name,
                            format!("unknown volumeMounts kind {other:?}"),
                        ));
                    }
                };
                let mut volume = json!({"name": vol_name});
                if let (Some(dst), Some(src)) = (volume.as_object_mut(), source.as_object()) {
                    dst.extend(src.clone());
                }
                volumes.push(volume);
            }
        }
    }
    if !mounts.is_empty() {
        container["volumeMounts"] = Value::Array(mounts);
    }

    let mut pod_labels = string_map(properties.get("labels"));
    pod_labels.insert(labels::APP_NAME.into(), json!(app_name));
    pod_labels.insert(labels::APP_COMPONENT.into(), json!(name));
    let mut template_meta = json!({"labels": pod_labels});
    let annotations = string_map(properties.get("annotations"));
    if !annotations.is_empty() {
        template_meta["annotations"] = Value::Object(annotations);
    }
    let mut pod_spec = json!({"containers": [container]});
    if let Some(secrets) = properties.get("imagePullSecrets").and_then(Value::as_array) {
        pod_spec["imagePullSecrets"] = secrets
            .iter()
            .filter_map(Value::as_str)
            .map(|s| json!({"name": s}))
            .collect();
    }
    if !volumes.is_empty() {
        pod_spec["volumes"] = Value::Array(volumes);
    }
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {labels::APP_COMPONENT: name}},
            "template": {"metadata": template_meta, "spec": pod_spec},
        },
    });
    let mut objects = vec![RenderedObject {
        object: deployment,
        trait_type: None,
    }];
    let exposed: Vec<&Port> = ports.iter().filter(|p| p.expose).collect();
    if !exposed.is_empty() {
        let expose_type = properties
            .get("exposeType")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP");
        objects.push(RenderedObject {
            object: service_object(
                name,
                name,
                exposed
                    .iter()
                    .map(|p| {
                        json!({
                            "port": p.port,
                            "targetPort": p.container_port,
                            "name": p.name,
                            "protocol": p.protocol,
                        })
                    })
                    .collect(),
                Some(expose_type),
            ),
            trait_type: None,
        });
    }
    Ok(objects)
}

fn trait_properties(t: &ApplicationTrait) -> Map<String, Value> {
    t.properties
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The component's workload (Deployment/StatefulSet/DaemonSet, the first object otherwise).
fn workload_mut(objects: &mut [RenderedObject]) -> Option<&mut Value> {
    let index = objects
        .iter()
        .position(|o| {
            o.trait_type.is_none()
                && matches!(
                    o.object["kind"].as_str(),
                    Some("Deployment" | "StatefulSet" | "DaemonSet")
                )
        })
        .or_else(|| objects.iter().position(|o| o.trait_type.is_none()))?;
    Some(&mut objects[index].object)
}

fn insert_all(target: &mut Value, pointer: &[&str], entries: &Map<String, Value>) {
    let mut cursor = target;
    for key in pointer {
        if !cursor.get(*key).is_some_and(Value::is_object) {
            cursor[*key] = json!({});
        }
        cursor = &mut cursor[*key];
    }
    if let Some(map) = cursor.as_object_mut() {
        for (k, v) in entries {
            map.insert(k.clone(), v.clone());
        }
    }
}

fn apply_trait(
    component: &ApplicationComponent,
    t: &ApplicationTrait,
    objects: &mut Vec<RenderedObject>,
) -> Result<()> {
    let name = component.name.as_str();
    let properties = trait_properties(t);
    match t.trait_type.as_str() {
        "scaler" => {
            let replicas = properties
                .get("replicas")
                .map(|v| {
                    as_i64(v).ok_or_else(|| invalid(name, "scaler: replicas must be a number"))
                })
                .transpose()?
                .unwrap_or(1);
            let workload = workload_mut(objects)
                .filter(|w| matches!(w["kind"].as_str(), Some("Deployment" | "StatefulSet")))
                .ok_or_else(|| {
                    invalid(name, "scaler needs a Deployment or StatefulSet workload")
                })?;
            workload["spec"]["replicas"] = json!(replicas);
        }
        "labels" | "annotations" => {
            let entries = string_map(Some(&Value::Object(properties)));
            let field = t.trait_type.as_str();
            for o in objects.iter_mut().filter(|o| o.trait_type.is_none()) {
                insert_all(&mut o.object, &["metadata", field], &entries);
                if o.object["spec"]["template"].is_object() {
                    insert_all(
                        &mut o.object,
                        &["spec", "template", "metadata", field],
                        &entries,
                    );
                }
            }
        }
        "env" => {
            let entries = string_map(properties.get("env"));
            let container_name = properties
                .get("containerName")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_string();
            let workload =
                workload_mut(objects).ok_or_else(|| invalid(name, "env needs a workload"))?;
            let containers = workload["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .ok_or_else(|| invalid(name, "env needs a workload with containers"))?;
            let only_one = containers.len() == 1;
            for c in containers
                .iter_mut()
                .filter(|c| only_one || c["name"].as_str() == Some(container_name.as_str()))
            {
                let mut env: Vec<Value> = c["env"].as_array().cloned().unwrap_or_default();
                for (k, v) in &entries {
                    match env
                        .iter_mut()
                        .find(|e| e["name"].as_str() == Some(k.as_str()))
                    {
                        Some(e) => *e = json!({"name": k, "value": v}),
                        None => env.push(json!({"name": k, "value": v})),
                    }
                }
                c["env"] = Value::Array(env);
            }
        }
        "expose" => {
            let ports: Vec<i64> = match properties.get("port") {
                Some(Value::Array(list)) => list.iter().filter_map(as_i64).collect(),
                Some(v) => as_i64(v).into_iter().collect(),
                None => Vec::new(),
            };
            if ports.is_empty() {
                return Err(invalid(name, "expose needs properties.port"));
            }
            let service_type = properties
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            objects.push(RenderedObject {
                object: service_object(name, name, numbered_ports(&ports), Some(service_type)),
                trait_type: Some(t.trait_type.clone()),
            });
        }
        "gateway" => render_gateway(name, t, &properties, objects)?,
        "storage" => render_storage(name, t, &properties, objects)?,
        other => {
            return Err(Error::UnknownTraitType {
                component: name.to_string(),
                trait_type: other.to_string(),
            });
        }
    }
    Ok(())
}

/// A Service named `service_name` selecting the pods of `component`, with `ports`
/// (Service port entries) and, when given, `spec.type`.
fn service_object(
    service_name: &str,
    component: &str,
    ports: Vec<Value>,
    service_type: Option<&str>,
) -> Value {
    let mut service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name},
        "spec": {
            "selector": {labels::APP_COMPONENT: component},
            "ports": ports,
        },
    });
    if let Some(service_type) = service_type {
        service["spec"]["type"] = json!(service_type);
    }
    service
}

/// Service ports for bare port numbers: each targets the same port, named `port-<N>`.
fn numbered_ports(ports: &[i64]) -> Vec<Value> {
    ports
        .iter()
        .map(|p| json!({"port": p, "targetPort": p, "name": format!("port-{p}")}))
        .collect()
}

fn render_gateway(
    name: &str,
    t: &ApplicationTrait,
    properties: &Map<String, Value>,
    objects: &mut Vec<RenderedObject>,
) -> Result<()> {
    let domain = properties.get("domain").and_then(Value::as_str);
    let http = properties
        .get("http")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid(name, "gateway needs properties.http (path: port)"))?;
    let mut routes = Vec::new();
    for (path, port) in http {
        let port = as_i64(port)
            .ok_or_else(|| invalid(name, format!("gateway: port of {path:?} must be a number")))?;
        routes.push((path.clone(), port));
    }
    let service_name = properties
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_string();
    let class = properties
        .get("class")
        .and_then(Value::as_str)
        .unwrap_or("nginx");
    let class_in_spec = properties
        .get("classInSpec")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let path_type = properties
        .get("pathType")
        .and_then(Value::as_str)
        .unwrap_or("ImplementationSpecific");
    let mut ports: Vec<i64> = routes.iter().map(|(_, p)| *p).collect();
    ports.sort_unstable();
    ports.dedup();
    let service = service_object(&service_name, name, numbered_ports(&ports), None);
    let mut annotations = string_map(properties.get("annotations"));
    if !class_in_spec {
        annotations.insert("kubernetes.io/ingress.class".into(), json!(class));
    }
    let mut metadata = json!({"name": service_name});
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    let labels_map = string_map(properties.get("labels"));
    if !labels_map.is_empty() {
        metadata["labels"] = Value::Object(labels_map);
    }
    let mut rule = json!({
        "http": {"paths": routes.iter().map(|(path, port)| json!({
            "path": path,
            "pathType": path_type,
            "backend": {"service": {"name": service_name, "port": {"number": port}}},
        })).collect::<Vec<_>>()},
    });
    if let Some(domain) = domain {
        rule["host"] = json!(domain);
    }
    let mut spec = json!({"rules": [rule]});
    if class_in_spec {
        spec["ingressClassName"] = json!(class);
    }
    if let Some(secret) = properties.get("secretName").and_then(Value::as_str) {
        let mut tls = json!({"secretName": secret});
        if let Some(domain) = domain {
            tls["hosts"] = json!([domain]);
        }
        spec["tls"] = json!([tls]);
    }
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    });
    for object in [service, ingress] {
        objects.push(RenderedObject {
            object,
            trait_type: Some(t.trait_type.clone()),
        });
    }
    Ok(())
}

fn render_storage(
    name: &str,
    t: &ApplicationTrait,
    properties: &Map<String, Value>,
    objects: &mut Vec<RenderedObject>,
) -> Result<()> {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let mut claims = Vec::new();
    for v in properties
        .get("pvc")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vol = v["name"]
            .as_str()
            .ok_or_else(|| invalid(name, "storage: every pvc needs a name"))?;
        let mount_path = v["mountPath"]
            .as_str()
            .ok_or_else(|| invalid(name, "storage: every pvc needs a mountPath"))?;
        let claim_name = v["claimName"].as_str().unwrap_or(vol);
        volumes.push(json!({"name": vol, "persistentVolumeClaim": {"claimName": claim_name}}));
        mounts.push(json!({"name": vol, "mountPath": mount_path}));
        if v["mountOnly"].as_bool() != Some(true) {
            let mut spec = json!({
                "accessModes": v.get("accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
                "volumeMode": v["volumeMode"].as_str().unwrap_or("Filesystem"),
                "resources": {"requests": {"storage": v.pointer("/resources/requests/storage")
                    .cloned().unwrap_or(json!("8Gi"))}},
            });
            if let Some(class) = v["storageClassName"].as_str() {
                spec["storageClassName"] = json!(class);
            }
            claims.push(json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim_name},
                "spec": spec,
            }));
        }
    }
    for v in properties
        .get("emptyDir")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vol = v["name"]
            .as_str()
            .ok_or_else(|| invalid(name, "storage: every emptyDir needs a name"))?;
        let mount_path = v["mountPath"]
            .as_str()
            .ok_or_else(|| invalid(name, "storage: every emptyDir needs a mountPath"))?;
        volumes.push(json!({"name": vol, "emptyDir": {}}));
        mounts.push(json!({"name": vol, "mountPath": mount_path}));
    }
    let workload =
        workload_mut(objects).ok_or_else(|| invalid(name, "storage needs a workload"))?;
    let pod_spec = &mut workload["spec"]["template"]["spec"];
    if !pod_spec["containers"].is_array() {
        return Err(invalid(name, "storage needs a workload with containers"));
    }
    let mut existing = pod_spec["volumes"].as_array().cloned().unwrap_or_default();
    existing.extend(volumes);
    pod_spec["volumes"] = Value::Array(existing);
    if let Some(first) = pod_spec["containers"]
        .as_array_mut()
        .and_then(|c| c.first_mut())
    {
        let mut existing = first["volumeMounts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        existing.extend(mounts);
        first["volumeMounts"] = Value::Array(existing);
    }
    objects.extend(claims.into_iter().map(|object| RenderedObject {
        object,
        trait_type: Some(t.trait_type.clone()),
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(v: Value) -> ApplicationComponent {
        serde_json::from_value(v).unwrap()
    }

    fn basic() -> ApplicationComponent {
        component(json!({
            "name": "hello-world-server", "type": "webservice",
            "properties": {"image": "crccheck/hello-world", "port": 8000},
            "traits": [
                {"type": "scaler", "properties": {"replicas": 3}},
                {"type": "gateway", "properties": {"domain": "testsvc-mc.example.com",
                                                   "http": {"/": 8000}}},
            ],
        }))
    }

    #[test]
    fn webservice_with_scaler_and_gateway() {
        let rendered = render_component(&basic(), "example-app", "default", &[]).unwrap();
        let kinds: Vec<(&str, Option<&str>)> = rendered
            .objects
            .iter()
            .map(|o| (o.object["kind"].as_str().unwrap(), o.trait_type.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Deployment", None),
                ("Service", Some("gateway")),
                ("Ingress", Some("gateway"))
            ]
        );
        let deployment = &rendered.objects[0].object;
        assert_eq!(
            deployment,
            &json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "hello-world-server"},
                "spec": {
                    "selector": {"matchLabels": {"app.oam.dev/component": "hello-world-server"}},
                    "template": {
                        "metadata": {"labels": {"app.oam.dev/name": "example-app",
                                                "app.oam.dev/component": "hello-world-server"}},
                        "spec": {"containers": [{
                            "name": "hello-world-server",
                            "image": "crccheck/hello-world",
                            "ports": [{"containerPort": 8000, "name": "port-8000", "protocol": "TCP"}],
                        }]},
                    },
                    "replicas": 3,
                },
            })
        );
        let ingress = &rendered.objects[2].object;
        assert_eq!(
            ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"],
            "nginx"
        );
        assert_eq!(
            ingress["spec"]["rules"][0]["host"],
            "testsvc-mc.example.com"
        );
        assert_eq!(
            ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"],
            json!({"service": {"name": "hello-world-server", "port": {"number": 8000}}})
        );
        assert!(ingress["spec"].get("ingressClassName").is_none());
    }

    #[test]
    fn class_in_spec_moves_the_class_to_ingress_class_name() {
        let mut c = basic();
        c.traits[1].properties = Some(json!({"domain": "a.example.com", "http": {"/": 80},
            "class": "traefik", "classInSpec": true, "secretName": "tls"}));
        let rendered = render_component(&c, "app", "default", &[]).unwrap();
        let ingress = &rendered.objects[2].object;
        assert_eq!(ingress["spec"]["ingressClassName"], "traefik");
        assert!(ingress["metadata"].get("annotations").is_none());
        assert_eq!(
            ingress["spec"]["tls"],
            json!([{"secretName": "tls", "hosts": ["a.example.com"]}])
        );
    }

    #[test]
    fn a_service_only_when_a_port_is_exposed() {
        let c = component(json!({"name": "web", "type": "webservice", "properties": {
            "image": "nginx", "ports": [{"port": 80, "expose": true}, {"port": 9090}],
            "exposeType": "NodePort",
            "env": [{"name": "A", "value": "x"},
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "cpu": "500m"}}));
        let rendered = render_component(&c, "app", "default", &[]).unwrap();
        assert_eq!(rendered.objects.len(), 2);
        let svc = &rendered.objects[1].object;
        assert_eq!(svc["spec"]["type"], "NodePort");
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80, "targetPort": 80, "name": "port-80", "protocol": "TCP"}])
        );
        let container = &rendered.objects[0].object["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["env"][1]["valueFrom"]["secretKeyRef"]["key"], "k");
        assert_eq!(container["resources"]["limits"]["cpu"], "500m");
        let plain = component(json!({"name": "web", "type": "webservice",
            "properties": {"image": "nginx", "port": 80}}));
        assert_eq!(
            render_component(&plain, "app", "default", &[])
                .unwrap()
                .objects
                .len(),
            1
        );
    }

    fn hub_deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "demo", "namespace": "demo", "uid": "u", "resourceVersion": "7",
                         "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1,
                         "labels": {"app": "demo"},
                         "managedFields": [{}], "ownerReferences": [{}]},
            "spec": {"replicas": 1},
            "status": {"replicas": 1},
        })
    }

    #[test]
    fn ref_objects_by_kind_and_name_are_stripped_copies() {
        let c = component(
            json!({"name": "demo", "type": "ref-objects", "properties": {
            "objects": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo"}]}}),
        );
        let queries = ref_object_queries(std::slice::from_ref(&c), "demo").unwrap();
        assert_eq!(queries[0].plural, "deployments");
        assert_eq!(queries[0].namespace, "demo");
        let rendered = render_component(&c, "demo", "demo", &[hub_deployment()]).unwrap();
        assert_eq!(
            rendered.objects[0].object,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "demo", "namespace": "demo", "labels": {"app": "demo"}},
                   "spec": {"replicas": 1}})
        );
        let err = render_component(&c, "demo", "demo", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "component demo: deployments.apps \"demo\" not found"
        );
    }

    #[test]
    fn ref_objects_by_resource_and_label_selector() {
        let c = component(json!({"name": "cfg", "type": "ref-objects", "properties": {
            "objects": [{"resource": "service", "labelSelector": {"app": "demo"}}]}}));
        let q = &ref_object_queries(std::slice::from_ref(&c), "demo").unwrap()[0];
        assert_eq!((q.api_version.as_str(), q.kind.as_str()), ("v1", "Service"));
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "demo", "labels": {"app": "demo"}},
            "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": []}});
        let other = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "t", "namespace": "demo", "labels": {"app": "x"}}});
        let rendered = render_component(&c, "demo", "demo", &[svc, other]).unwrap();
        assert_eq!(rendered.objects.len(), 1);
        assert_eq!(rendered.objects[0].object["spec"], json!({"ports": []}));
    }

    #[test]
    fn unknown_types_and_bad_properties_are_errors() {
        let c = component(json!({"name": "x", "type": "helm"}));
        assert_eq!(
            render_component(&c, "a", "d", &[]).unwrap_err().to_string(),
            "component x: unknown component type \"helm\""
        );
        let c = component(
            json!({"name": "x", "type": "webservice", "properties": {"image": "i"},
            "traits": [{"type": "sidecar"}]}),
        );
        assert!(matches!(
            render_component(&c, "a", "d", &[]),
            Err(Error::UnknownTraitType { .. })
        ));
        let c = component(json!({"name": "x", "type": "webservice", "properties": {}}));
        assert!(matches!(
            render_component(&c, "a", "d", &[]),
            Err(Error::InvalidProperties { .. })
        ));
        let c = component(json!({"name": "x", "type": "webservice",
            "properties": {"image": "i", "ports": "eighty"}}));
        assert!(render_component(&c, "a", "d", &[]).is_err());
    }

    #[test]
    fn labels_env_and_storage_traits_patch_the_workload() {
        let c = component(
            json!({"name": "w", "type": "webservice", "properties": {"image": "i"},
            "traits": [
                {"type": "labels", "properties": {"tier": "web"}},
                {"type": "env", "properties": {"env": {"A": "1"}}},
                {"type": "storage", "properties": {"pvc": [{"name": "data", "mountPath": "/data"}]}},
            ]}),
        );
        let rendered = render_component(&c, "a", "d", &[]).unwrap();
        let d = &rendered.objects[0].object;
        assert_eq!(d["metadata"]["labels"]["tier"], "web");
        assert_eq!(d["spec"]["template"]["metadata"]["labels"]["tier"], "web");
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["env"], json!([{"name": "A", "value": "1"}]));
        assert_eq!(container["volumeMounts"][0]["mountPath"], "/data");
        assert_eq!(rendered.objects[1].object["kind"], "PersistentVolumeClaim");
    }
}
