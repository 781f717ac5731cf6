# Emulates the CUDA backend's numerics on the CPU for one real model (pan_seg): every weight
# and every node output rounded to fp16, arithmetic in fp64 (cuDNN and shoal's kernels
# accumulate in fp32 on fp16 operands). Tells an inherent fp16 error from a kernel bug: if this
# reaches the GPU's error, the kernels are not to blame. Debian python (torch 1.13, onnx 1.12).
#
#   usage: fp16_emulate.py MODEL [trace|mask]     (env: REAL=../shared/real-models,
#          GOLD=folder with the unpacked golden/g_pan1.tgz, RANDIN=seed for a uniform(-1,1) input)
# Covers the ops of pan_seg (simplified) only.
import os, sys, onnx, numpy as np, torch, torch.nn.functional as F
from onnx import numpy_helper
torch.set_grad_enabled(False)
model = sys.argv[1]
REAL = os.environ.get('REAL', os.path.join(os.path.dirname(__file__), '../../../shared/real-models'))
GOLD = os.environ.get('GOLD', '/tmp/golden')
m = onnx.load(f'{REAL}/{model}/model.onnx'); g = m.graph
inp = onnx.TensorProto(); inp.ParseFromString(open(f'{GOLD}/{model}/test_data_set_0/input_0.pb','rb').read())
out = onnx.TensorProto(); out.ParseFromString(open(f'{GOLD}/{model}/test_data_set_0/output_0.pb','rb').read())
X = torch.from_numpy(numpy_helper.to_array(inp).copy()).double()
import os
if os.environ.get("RANDIN"):
    torch.manual_seed(int(os.environ["RANDIN"])); X = torch.rand(X.shape, dtype=torch.float64)*2-1
ref = numpy_helper.to_array(out).astype(np.float64)
REF_FROM_RUN = bool(os.environ.get("RANDIN"))
inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
def at(n): return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
def h(t): return t.half().double()
def run(w16=True, a16=lambda n: True, inp16=True, final=None):
    env = {k: (h(v.double()) if w16 else v.double()) if v.is_floating_point() else v for k, v in inits.items()}
    env[g.input[0].name] = h(X) if inp16 else X
    for n in g.node:
        A = at(n); I = [env[x] if x else None for x in n.input]; op = n.op_type
        if op == 'Constant':
            y = torch.from_numpy(numpy_helper.to_array(A['value']).copy()); y = y.double() if y.is_floating_point() else y
        elif op == 'Conv':
            p = A.get('pads', [0,0,0,0]); x = I[0]
            if p[0] != p[2] or p[1] != p[3]: x = F.pad(x, (p[1], p[3], p[0], p[2])); p = [0,0,0,0]
            y = F.conv2d(x, I[1], I[2] if len(I) > 2 else None, A.get('strides',[1,1]), (p[0],p[1]), A.get('dilations',[1,1]), A.get('group',1))
        elif op == 'Relu': y = F.relu(I[0])
        elif op == 'Sigmoid': y = torch.sigmoid(I[0])
        elif op == 'Clip': y = torch.clamp(I[0], float(I[1]), float(I[2]))
        elif op == 'HardSigmoid': y = torch.clamp(A.get('alpha',0.2)*I[0] + A.get('beta',0.5), 0, 1)
        elif op == 'Mul': y = I[0]*I[1]
        elif op == 'Add': y = I[0]+I[1]
        elif op == 'Div': y = I[0]/I[1]
        elif op == 'ReduceMean': y = I[0].mean(dim=A['axes'], keepdim=True)
        elif op == 'GlobalAveragePool': y = I[0].mean(dim=(2,3), keepdim=True)
        elif op == 'MaxPool': y = F.max_pool2d(I[0], A['kernel_shape'], A['strides'])
        elif op == 'Shape': y = torch.tensor(list(I[0].shape), dtype=torch.int64)
        elif op == 'Slice':
            st, en = int(I[1][0]), int(I[2][0]); ax = int(I[3][0]) if len(I) > 3 else 0
            en = min(en, I[0].shape[ax]); y = I[0].narrow(ax, st, en - st)
        elif op == 'Concat': y = torch.cat(I, dim=A['axis'])
        elif op == 'Resize':
            size = [int(v) for v in I[3][2:]] if len(I) > 3 and I[3] is not None else [int(I[0].shape[2]*float(I[2][2])), int(I[0].shape[3]*float(I[2][3]))]
            y = F.interpolate(I[0], size=size, mode='bilinear', align_corners=True)
        else: raise SystemExit(op)
        if y.is_floating_point() and a16(n): y = h(y)
        env[n.output[0]] = y
    o = env[g.output[0].name].numpy()
    global ref
    if final is not None: final.update(env)
    return np.linalg.norm(o - ref) / np.linalg.norm(ref)
if REF_FROM_RUN:
    e={}; run(w16=False, a16=lambda n: False, inp16=False, final=e); ref=e[g.output[0].name].numpy()
print('all fp16            %.3e' % run())
print('weights fp32        %.3e' % run(w16=False))
print('acts fp32 (w16)     %.3e' % run(a16=lambda n: False))
print('input fp32          %.3e' % run(inp16=False))
ops = sorted(set(n.op_type for n in g.node))
for op in ops:
    print('keep %-14s fp32 %.3e' % (op, run(a16=lambda n, op=op: n.op_type != op)))
# by position: first k nodes fp32
N = len(g.node)
for frac in (0.25, 0.5, 0.75, 0.9):
    k = int(N*frac); names = set(n.name for n in g.node[:k])
    print('first %3d nodes fp32 %.3e   last %3d fp32 %.3e' % (k, run(a16=lambda n: n.name not in names), N-k, run(a16=lambda n: n.name in names)))
if len(sys.argv) > 2 and sys.argv[2] == "trace":
    e32, e16 = {}, {}
    run(w16=False, a16=lambda n: False, inp16=False, final=e32)
    run(final=e16)
    prev = 0
    for n in g.node:
        a, b = e32[n.output[0]], e16[n.output[0]]
        if not a.is_floating_point() or a.numel() < 2: continue
        r = float((a-b).norm() / (a.norm() + 1e-30))
        if r > 1.5*prev or r > 5e-3:
            print('%-20s %-12s %-18s rel %.2e  max|x| %.3g  norm %.3g' % (n.name, n.op_type, tuple(a.shape), r, float(a.abs().max()), float(a.norm())))
        prev = r
if len(sys.argv) > 2 and sys.argv[2] == 'mask':
    e = {}
    run(final=e); o = e[g.output[0].name].numpy()
    print('mask agreement (>0.5): %.5f' % np.mean((o > 0.5) == (ref > 0.5)))
    print('max abs diff %.3f' % np.abs(o - ref).max())
