#!/usr/bin/python3
"""Offline checks of deploy/k8s/*.yaml (no cluster: kubectl validates only against an API
server, see k8s_schema.py). Every document must parse and carry apiVersion/kind/metadata.name,
be read by kubectl where it is installed (`kubectl label --local`: its own YAML reader, no
server), and match the Kubernetes API schema (k8s_schema.py, with Debian's python3-kubernetes:
field names, types, required fields); then the pieces must fit together and agree with the
shoal binary:
 - the Deployment requests a GPU, has startup/readiness/liveness probes on /healthz and
   /readyz at the container's port, and mounts the ConfigMap that exists here;
 - every flag in its args is one `shoal serve --help` lists, and the config file it names is
   the ConfigMap's key;
 - the Service, PodDisruptionBudget and pods share one selector;
 - the HPA scales that Deployment on a metric shoal's /metrics exports (the server's source
   is searched for its name) and the Prometheus adapter rule exposes that same metric;
 - the ConfigMap's shoal config parses, and its modes name its models.
Usage: check_k8s.py K8S_DIR SHOAL_BINARY SERVER_SOURCE. Prints 'ok ...' lines; exit 1 on a failure."""
import glob, os, re, shutil, subprocess, sys
import yaml

try:
    import k8s_schema
except ImportError:   # python3-kubernetes is not installed
    k8s_schema = None

k8s_dir, shoal, server_src = sys.argv[1:4]
fails = 0


def check(cond, msg):
    global fails
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        fails += 1


docs = []
for path in sorted(glob.glob(os.path.join(k8s_dir, "*.yaml"))):
    for d in yaml.safe_load_all(open(path)):
        if d is None:
            continue
        ok = isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name")
        check(bool(ok), f"{os.path.basename(path)}: {d.get('kind') if isinstance(d, dict) else '?'} has apiVersion, kind, name")
        docs.append(d)
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"):
    check(kind in by_kind, f"a {kind} is defined")
if fails:
    sys.exit(1)

if shutil.which("kubectl"):
    files = sorted(glob.glob(os.path.join(k8s_dir, "*.yaml")))
    r = subprocess.run(["kubectl", "label", "--local", "-o", "name", "shoal-check=1"] + sum((["-f", f] for f in files), []),
                       capture_output=True, text=True)
    check(r.returncode == 0 and len(r.stdout.split()) == len(docs),
          f"kubectl reads every document ({len(r.stdout.split())} of {len(docs)})" + (f": {r.stderr.strip()}" if r.returncode else ""))
else:
    print("skip kubectl is not installed: the documents are not read by kubectl's YAML reader")
if k8s_schema:
    for d in docs:
        errors = k8s_schema.check(d)
        check(not errors, f"{d['kind']} {d['metadata']['name']} matches the API schema" + "".join("\n     " + e for e in errors))
else:
    print("skip python3-kubernetes is not installed: field names and types are not checked against the API schema")

dep = by_kind["Deployment"][0]
pod = dep["spec"]["template"]
labels = pod["metadata"]["labels"]
check(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "the Deployment's selector matches its pods")
c = pod["spec"]["containers"][0]
res = c.get("resources", {})
check(str(res.get("limits", {}).get("nvidia.com/gpu")) == "1" and str(res.get("requests", {}).get("nvidia.com/gpu")) == "1",
      "one GPU requested and limited (nvidia.com/gpu)")
ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
for probe, want in (("startupProbe", ("/healthz", "/readyz")), ("readinessProbe", ("/readyz",)),
                    ("livenessProbe", ("/healthz",))):
    p = c.get(probe, {}).get("httpGet", {})
    port_ok = p.get("port") in ports or p.get("port") in ports.values()
    check(p.get("path") in want and port_ok, f"{probe} on {p.get('path')} at the container's port")

# Flags against the binary's own help text.
help_text = subprocess.run([shoal, "serve", "--help"], capture_output=True, text=True).stdout
args = c.get("args", [])
check(args[:1] == ["serve"], "the container runs `shoal serve`")
flags = [a for a in args if a.startswith("--")]
unknown = [f for f in flags if not re.search(re.escape(f) + r"\b", help_text)]
check(not unknown, f"every flag is one shoal serve knows ({', '.join(flags)})" + (f"; unknown: {unknown}" if unknown else ""))
config_path = args[args.index("--config") + 1] if "--config" in args else ""
mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
vols = {v["name"]: v for v in pod["spec"].get("volumes", [])}
cms = {d["metadata"]["name"]: d for d in by_kind["ConfigMap"]}
cfg_ok = False
for name, mp in mounts.items():
    v = vols.get(name, {})
    if "configMap" in v and config_path.startswith(mp.rstrip("/") + "/"):
        cm = cms.get(v["configMap"]["name"])
        key = config_path[len(mp.rstrip("/")) + 1:]
        cfg_ok = cm is not None and key in cm.get("data", {})
        if cfg_ok:
            cfg = yaml.safe_load(cm["data"][key])
            models = set(cfg.get("models", {}))
            modes = cfg.get("modes", {})
            check(bool(models) and all(set(m) <= models for m in modes.values()),
                  f"the config's modes name its models ({', '.join(sorted(modes))})")
            check(cfg.get("default_mode") in modes, "the config's default_mode is one of its modes")
check(cfg_ok, f"--config {config_path} is a key of a mounted ConfigMap defined here")

for kind in ("Service", "PodDisruptionBudget"):
    d = by_kind[kind][0]
    sel = d["spec"]["selector"]
    sel = sel.get("matchLabels", sel)
    check(sel.items() <= labels.items(), f"the {kind} selects the Deployment's pods")
svc = by_kind["Service"][0]
check(all(p.get("targetPort") in ports or p.get("targetPort") in ports.values() for p in svc["spec"]["ports"]),
      "the Service targets the container's port")

hpa = by_kind["HorizontalPodAutoscaler"][0]
ref = hpa["spec"]["scaleTargetRef"]
check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], "the HPA scales the Deployment")
src = "".join(open(f).read() for f in glob.glob(os.path.join(server_src, "*.c")))
for m in hpa["spec"]["metrics"]:
    name = m.get("pods", m.get("object", m.get("external", {}))).get("metric", {}).get("name", "")
    check(bool(name) and ("# TYPE " + name) in src, f"the HPA's metric {name} is exported by the server")
    adapter = [d for d in cms.values() if name in str(d.get("data", {}))]
    check(bool(adapter), f"a Prometheus adapter rule exposes {name}")
sys.exit(1 if fails else 0)
