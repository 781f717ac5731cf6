#!/usr/bin/env python3
"""Per-conv A/B from two test_cuda_models logs run with SHOAL_CUDA_PROFILE_CONVS=1: the own
conv (default) against cuDNN (SHOAL_CUDA_IGEMM=0), grouped by shape, worst first.
usage: convcmp.py own.log cudnn.log"""
import sys, collections
def load(f):
    d = collections.OrderedDict(); cnt = collections.Counter()
    for l in open(f):
        if not l.startswith("convprof "): continue
        t = l.split(); key = tuple(t[1:2] + t[3:11]); cnt[key] += 1
        d[key + (cnt[key],)] = (t[2], float(t[-1]), t[11])
    return d
own, dnn = load(sys.argv[1]), load(sys.argv[2])
agg = collections.defaultdict(lambda: [0, 0.0, 0.0])
for k, (kind, us, sp) in own.items():
    if k not in dnn: continue
    a = agg[k[:-1] + (sp,)]; a[0] += 1; a[1] += us; a[2] += dnn[k][1]
rows = sorted(agg.items(), key=lambda kv: -(kv[1][1] - kv[1][2]))
print("model c h w k oh ow r s | n own_us cudnn_us (per conv) split")
for k, (n, o, c) in rows[:25] + [("...",(0,0,0))] + rows[-12:]:
    if k == "...": print("..."); continue
    print(" ".join(k[:-1]), "| %d %.1f %.1f %s" % (n, o / n, c / n, k[-1]))
tot_o = sum(v[1] for v in agg.values()); tot_c = sum(v[2] for v in agg.values())
print("total own %.0f us, cudnn %.0f us; best-of %.0f us" % (tot_o, tot_c, sum(min(v[1], v[2]) for v in agg.values())))
