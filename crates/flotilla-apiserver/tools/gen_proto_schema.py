#!/usr/bin/env python3
"""Generates src/proto_schema.txt: the protobuf field table of the Kubernetes kinds the API
server decodes from `application/vnd.kubernetes.protobuf` bodies (kubectl 1.32+ sends its
typed creates that way).

Field numbers and types come from the k8s-pb crate's generated messages (the wire format);
JSON field names come from the k8s-openapi crate (the JSON names of the same fields).

usage: gen_proto_schema.py K8S_PB_SRC K8S_OPENAPI_SRC/v1_NN ROOT... > src/proto_schema.txt

The ROOT messages are the API server's: every built-in kind's strategy names its k8s-openapi
type, whose protobuf message is a root, plus the bodies that are not kinds (Scale,
DeleteOptions, TokenRequest). Don't pick them by hand: the test
`proto::tests::schema_covers_every_typed_kind` prints this command with the roots when the
file is stale. The roots are written to the file's second line, which that test compares.
k8s-pb's source is in cargo's registry after `cargo fetch` in a scratch crate depending on it.
"""
import os
import re
import sys

PB, OPENAPI = sys.argv[1], sys.argv[2]

ROOTS = sys.argv[3:]

# Types the decoder handles itself.
LEAVES = {
    "apimachinery.pkg.apis.meta.v1.Time", "apimachinery.pkg.apis.meta.v1.MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration", "apimachinery.pkg.apis.meta.v1.FieldsV1",
    "apimachinery.pkg.util.intstr.IntOrString", "apimachinery.pkg.api.resource.Quantity",
    "apimachinery.pkg.runtime.RawExtension",
    "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON",
    "api.authorization.v1.ExtraValue", "api.authentication.v1.ExtraValue",
}

# Go fields embedded with `json:",inline"`: their fields appear in the parent object.
INLINE = {("api.networking.v1.IngressRule", "ingress_rule_value"),
          ("api.core.v1.Volume", "volume_source"),
          ("api.core.v1.EphemeralContainer", "ephemeral_container_common"),
          ("api.core.v1.Probe", "handler")}

SCALARS = {"string": "s", "int32": "i32", "int64": "i64", "bool": "b", "bytes": "by",
           "double": "d", "float": "f"}


def rust_type_path(ty, module):
    """The message a Rust field type refers to, as a dotted module path."""
    ty = re.sub(r"\s+", "", ty)
    for wrapper in ["::core::option::Option<", "::prost::alloc::vec::Vec<",
                    "::prost::alloc::boxed::Box<"]:
        while ty.startswith(wrapper):
            ty = ty[len(wrapper):-1]
    m = re.match(r".*BTreeMap<[^,]+,(.+)>$", ty)
    if m:
        ty = m.group(1)
    if ty.startswith("::prost") or ty.startswith("::core") or ty in ("i32", "i64", "bool", "f64", "f32"):
        return None
    parts = ty.split("::")
    mod = list(module)
    while parts and parts[0] == "super":
        mod.pop()
        parts.pop(0)
    return ".".join(mod + parts)


def parse_pb():
    messages = {}
    for root, _, files in os.walk(PB):
        for f in files:
            if f != "mod.rs":
                continue
            path = os.path.join(root, f)
            module = os.path.relpath(root, PB).split(os.sep)
            text = open(path).read()
            current = None
            attr = None
            lines = text.split("\n")
            i = 0
            while i < len(lines):
                line = lines[i].strip()
                m = re.match(r"pub struct (\w+) \{", line)
                if m:
                    current = ".".join(module + [m.group(1)])
                    messages[current] = []
                elif line == "}" and current:
                    current = None
                elif line.startswith("#[prost(") and current:
                    attr = line
                elif attr and line.startswith("pub ") and current:
                    decl = line
                    while not decl.endswith(",") or decl.count("<") != decl.count(">"):
                        i += 1
                        decl += lines[i].strip()
                    name, ty = decl[4:].split(":", 1)
                    name = name.replace("r#", "")
                    ty = re.sub(r"\s+", "", ty).rstrip(",").replace(",>", ">")
                    tag = re.search(r'tag = "(\d+)"', attr).group(1)
                    repeated = "repeated" in attr
                    mm = re.search(r'(?:btree_)?map = "(\w+), (\w+)"', attr)
                    if mm:
                        vkind = SCALARS.get(mm.group(2), "m")
                        ref = rust_type_path(ty, module) if vkind == "m" else None
                        messages[current].append((int(tag), name, "map:" + vkind, False, ref))
                    else:
                        kind = attr[len("#[prost("):].split(",")[0].strip().split(" ")[0]
                        if kind == "message":
                            messages[current].append((int(tag), name, "m", repeated, rust_type_path(ty, module)))
                        else:
                            messages[current].append((int(tag), name, SCALARS[kind], repeated, None))
                    attr = None
                i += 1
    return messages


def parse_openapi():
    names = {}
    for root, _, files in os.walk(OPENAPI):
        for f in files:
            if not f.endswith(".rs"):
                continue
            module = os.path.relpath(root, OPENAPI).split(os.sep)
            text = open(os.path.join(root, f)).read()
            for m in re.finditer(r"Deserialize<'de> for (\w+) \{(.*?)\n\}\n", text, re.S):
                ty = m.group(1)
                fields = {}
                for fm in re.finditer(r'"([^"]+)" => Field::Key_(\w+),', m.group(2)):
                    fields[fm.group(2).replace("_", "").lower()] = fm.group(1)
                names[".".join(module + [ty]).lower()] = fields
    return names


# Inlined Go structs have no JSON type of their own; their fields are named in the parent's.
NAME_SOURCE = {"api.core.v1.VolumeSource": "api.core.v1.Volume",
               "api.networking.v1.IngressRuleValue": "api.networking.v1.IngressRule",
               "api.core.v1.EphemeralContainerCommon": "api.core.v1.EphemeralContainer",
               "api.core.v1.ProbeHandler": "api.core.v1.Probe"}


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main():
    messages = parse_pb()
    names = parse_openapi()
    seen, order, todo = set(), [], list(ROOTS)
    while todo:
        m = todo.pop(0)
        if m in seen or m in LEAVES:
            continue
        if m not in messages:
            sys.exit(f"unknown message {m}")
        seen.add(m)
        order.append(m)
        for (_, _, kind, _, ref) in messages[m]:
            if ref and ref not in seen:
                todo.append(ref)
    print("# Generated by tools/gen_proto_schema.py; message|tag|json name|kind|repeated|type")
    print("# roots: " + " ".join(ROOTS))
    for m in order:
        json_names = names.get(NAME_SOURCE.get(m, m).lower(), {})
        for (tag, name, kind, repeated, ref) in messages[m]:
            if (m, name) in INLINE or name == "local_object_reference":
                jname = ""
            else:
                jname = json_names.get(name.replace("_", "").lower(), camel(name))
            print(f"{m}|{tag}|{jname}|{kind}|{1 if repeated else 0}|{ref or ''}")


main()
