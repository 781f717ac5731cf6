#!/usr/bin/python3
"""k8s_schema.check must refuse what an API server would: each broken document below has one
fault and must draw an error naming it; the valid one must draw none.
Exit 77 (skipped) without python3-kubernetes or python3-yaml."""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import yaml
    import k8s_schema
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(77)

VALID = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replicas: 2
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: i
          ports: [{containerPort: 8080, name: http}]
          resources: {limits: {nvidia.com/gpu: 1, memory: 6Gi}}
          readinessProbe: {httpGet: {path: /readyz, port: http}}
"""

# (what to change in VALID, the text the error must contain)
BROKEN = [
    (("replicas: 2", "replicas: two"), "spec.replicas: expected int"),
    (("selector:", "selectr:"), "selectr: no such field"),
    (("image: i", "image: i\n          portz: 3"), "portz: no such field in V1Container"),
    (("ports: [{containerPort: 8080, name: http}]", "ports: {containerPort: 8080}"), "ports: expected a list"),
    (("- name: c\n", "- image2: x\n"), "image2: no such field"),
    (("  selector: {matchLabels: {a: b}}\n", ""), "`selector`, must not be `None`"),
    (("kind: Deployment", "kind: Deploymnt"), "not a kind this check knows"),
    (("{limits: {nvidia.com/gpu: 1, memory: 6Gi}}", "{limits: [1]}"), "limits: expected a map"),
    (("readinessProbe: {httpGet: {path: /readyz, port: http}}", "readinessProbe: {httpGet: {path: /readyz}}"),
     "`port`, must not be `None`"),
]

fails = 0
errors = k8s_schema.check(yaml.safe_load(VALID))
if errors:
    print("FAIL the valid Deployment draws errors:", errors)
    fails += 1
for (old, new), want in BROKEN:
    assert old in VALID, old
    errors = k8s_schema.check(yaml.safe_load(VALID.replace(old, new, 1)))
    ok = any(want in e for e in errors)
    print(("ok   " if ok else "FAIL ") + f"{new.strip()[:40]!r}: {errors}")
    fails += not ok
sys.exit(1 if fails else 0)
