"""Kubernetes objects checked against the API's own schema, offline.

kubectl validates only against a live API server: `apply`/`create --dry-run=client` first ask
the server which resource a kind is (discovery), and `--validate` downloads the server's
OpenAPI document, so without a cluster both fail before reading a field. Debian's
python3-kubernetes carries the same schema as generated model classes (one per type, with each
field's name and type from the OpenAPI document, and setters that refuse a missing required
field or a value outside an enum). Walking a manifest through them finds what a server would
refuse: a misspelt or misplaced field, a wrong type (a string where a number goes, a map
where a list goes), a missing required field.

The package (22.x) predates autoscaling/v2 as a name: v2 is v2beta2 promoted without a
field change (Kubernetes 1.23), so its classes check v2 objects."""
import datetime
import re

from kubernetes import client

KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
}

PRIMITIVES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
              "quantity": (str, int, float)}
# Fields of type Quantity, which the API reads from a string or a number ("1", 1, 0.5); the
# generated classes call them str.
QUANTITY_MAPS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
                 ("V1ResourceQuotaSpec", "hard"), ("V1LimitRangeItem", "max"), ("V1LimitRangeItem", "min"),
                 ("V1LimitRangeItem", "default"), ("V1LimitRangeItem", "default_request")}


def _type_name(v):
    return type(v).__name__


def _walk(value, typ, path, errors):
    """Returns what the model constructors take for `value` (given back as it is where it is
    wrong: the error is already recorded, and a parent must not report it missing)."""
    if value is None:
        return None
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, found {_type_name(value)}")
            return value
        return [_walk(v, m.group(1), f"{path}[{i}]", errors) for i, v in enumerate(value)]
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, found {_type_name(value)}")
            return value
        return {str(k): _walk(v, m.group(1), f"{path}.{k}", errors) for k, v in value.items()}
    if typ == "object":   # IntOrString, Quantity and free-form fields
        return value
    if typ == "datetime":
        if not isinstance(value, (str, datetime.datetime)):
            errors.append(f"{path}: expected a timestamp, found {_type_name(value)}")
        return value
    if typ in PRIMITIVES:
        # YAML's booleans are ints to Python: a bool where a number goes is still wrong.
        ok = isinstance(value, PRIMITIVES[typ]) and not (typ in ("int", "float") and isinstance(value, bool))
        if not ok:
            errors.append(f"{path}: expected {typ}, found {_type_name(value)} {value!r}")
        return value
    cls = getattr(client, typ, None)
    if cls is None:
        errors.append(f"{path}: the schema names an unknown type {typ}")
        return value
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {typ} object, found {_type_name(value)}")
        return value
    by_json = {json: attr for attr, json in cls.attribute_map.items()}
    kwargs = {}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{path}.{key}: no such field in {typ}")
            continue
        sub = cls.openapi_types[attr]
        if (typ, attr) in QUANTITY_MAPS:
            sub = "dict(str, quantity)"
        kwargs[attr] = _walk(v, sub, f"{path}.{key}", errors)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:   # a required field missing, a value outside an enum
        errors.append(f"{path}: {e}")
    return value


def check(doc):
    """The schema errors of one manifest document (a parsed YAML mapping); [] when it is valid."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    typ = KINDS.get(key)
    if typ is None:
        return [f"{key[1]} of {key[0]}: not a kind this check knows (add it to KINDS)"]
    errors = []
    _walk(doc, typ, key[1], errors)
    return errors
