#!/usr/bin/env node
// ONNX Runtime peer for shoal's benchmarks: the five AIGlasses models resident in one process,
// CPU execution provider, all graph optimisations, a fixed number of intra-op threads.
// Prints one JSON line: load time, per-model and per-mode latency (median/p90/p99), peak RSS,
// and with --compare the relative L2 error of each output against PyTorch's saved .npy.
//
// Setup: (cd bench && npm install --ignore-scripts)   # onnxruntime-node, CPU binaries
// Usage: node bench/ort_runner.js [--models DIR] [--threads 2] [--iters 20] [--warmup 3]
//                                 [--compare] [--no-bench] [--save-outputs DIR] [--hand DIR]
//                                 [--only NAME,NAME...]   (default: all five; a mode needs all its models)
//
// --hand DIR: "hand" is MediaPipe's hand landmarker, as shoal's shopping mode runs it on a
// frame where it finds one hand: the palm detector, then the landmark model on one crop, in
// turn. DIR is what `python3 bench/tflite_torch.py export --out DIR` wrote (hand_palm.onnx and
// hand_landmark.onnx from the .tflite files' real weights, their inputs, and the PyTorch
// module's outputs that --compare checks against). Without it "hand" is models/hand.onnx, the
// MobileNetV3 stand-in, and the JSON says so.
'use strict';
const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');
const ort = require('onnxruntime-node');

let NAMES = ['blind_road', 'obstacle', 'shopping', 'traffic_light', 'hand'];
const MODES = { navigation: ['blind_road', 'obstacle'], crossing: ['traffic_light'],
                shopping: ['shopping', 'hand'] };

function parseArgs(argv) {
  const a = { models: path.join(__dirname, '..', 'models'), threads: 2, iters: 20, warmup: 3,
              compare: false, bench: true, saveOutputs: null, hand: null };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const next = () => { if (i + 1 >= argv.length) throw new Error(`${k} needs a value`); return argv[++i]; };
    if (k === '--models') a.models = next();
    else if (k === '--threads') a.threads = parseInt(next(), 10);
    else if (k === '--iters') a.iters = parseInt(next(), 10);
    else if (k === '--warmup') a.warmup = parseInt(next(), 10);
    else if (k === '--compare') a.compare = true;
    else if (k === '--no-bench') a.bench = false;
    else if (k === '--save-outputs') a.saveOutputs = next();
    else if (k === '--hand') a.hand = next();
    else if (k === '--only') {
      const want = next().split(',');
      for (const n of want) if (!NAMES.includes(n)) throw new Error(`--only: unknown model ${n}`);
      NAMES = NAMES.filter(n => want.includes(n));
    }
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

// Minimal .npy reader: little-endian float32, C order (what tools/export_models.py writes).
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.readUInt8(0) !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not .npy`);
  const major = buf.readUInt8(6);
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (descr !== '<f4') throw new Error(`${file}: dtype ${descr}, want <f4`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const off = hstart + hlen;
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(off + 4 * i);
  return { shape, data };
}

function writeNpy(file, shape, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const h = Buffer.alloc(10);
  h.writeUInt8(0x93, 0); h.write('NUMPY', 1, 'latin1'); h.writeUInt8(1, 6); h.writeUInt8(0, 7);
  h.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([h, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

function quantiles(ms) {
  const s = [...ms].sort((x, y) => x - y);
  const q = p => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const r = v => Math.round(v * 1000) / 1000;
  return { median_ms: r(q(0.5)), p90_ms: r(q(0.9)), p99_ms: r(q(0.99)), n: s.length };
}

function relL2(a, b) {
  let num = 0, den = 0, maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d; den += b[i] * b[i];
    if (Math.abs(d) > maxAbs) maxAbs = Math.abs(d);
  }
  return { rel_l2: Math.sqrt(num / den), max_abs: maxAbs };
}

// The ONNX files one model's frame runs in turn: [{key, file, input, refDir}].
function parts(a, n) {
  if (n === 'hand' && a.hand) {
    return ['hand_palm', 'hand_landmark'].map(key => ({
      key, file: path.join(a.hand, `${key}.onnx`), input: path.join(a.hand, `${key}.input.npy`), refDir: a.hand }));
  }
  return [{ key: n, file: path.join(a.models, `${n}.onnx`), input: path.join(a.models, `${n}.input.npy`),
            refDir: a.models }];
}

async function main() {
  const a = parseArgs(process.argv);
  const opts = { intraOpNumThreads: a.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
                 executionMode: 'sequential', executionProviders: ['cpu'] };
  const models = {}, loadMs = {};
  const t0 = performance.now();
  for (const n of NAMES) {
    const t1 = performance.now();
    models[n] = [];
    for (const p of parts(a, n)) {
      const sess = await ort.InferenceSession.create(p.file, opts);
      const x = readNpy(p.input);
      models[n].push({ ...p, sess, feed: { [sess.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) } });
    }
    loadMs[n] = Math.round((performance.now() - t1) * 10) / 10;
  }
  const run = async n => { for (const p of models[n]) await p.sess.run(p.feed); };
  const out = { runner: 'onnxruntime-node', ort_version: ort.env.versions ? ort.env.versions.common : undefined,
                device: 'cpu', threads: a.threads, graph_optimization: 'all',
                load_s: Math.round(performance.now() - t0) / 1000, load_ms_per_model: loadMs,
                hand: a.hand ? 'MediaPipe hand landmarker: hand_palm.onnx [1,192,192,3] then hand_landmark.onnx ' +
                               '[1,224,224,3] on one crop, per frame (bench/tflite_torch.py export of the .tflite files)'
                             : 'stand-in: models/hand.onnx (MobileNetV3, random weights), not MediaPipe\'s' };

  if (a.compare || a.saveOutputs) {
    const cmp = {};
    for (const n of NAMES) {
      cmp[n] = {};
      for (const p of models[n]) {
        const res = await p.sess.run(p.feed);
        for (const o of p.sess.outputNames) {
          const t = res[o];
          const label = p.key === n ? o : `${p.key}.${o}`;
          if (a.saveOutputs) writeNpy(path.join(a.saveOutputs, `${n}.${label}.ort.npy`), t.dims, t.data);
          const ref = path.join(p.refDir, `${p.key}.${o}.npy`);
          if (a.compare && fs.existsSync(ref)) {
            const r = readNpy(ref);
            if (r.data.length !== t.data.length) throw new Error(`${p.key}.${o}: ${t.dims} vs reference ${r.shape}`);
            const e = relL2(t.data, r.data);
            cmp[n][label] = { rel_l2: Number(e.rel_l2.toPrecision(3)), max_abs: Number(e.max_abs.toPrecision(3)) };
          }
        }
      }
    }
    if (a.compare) out.vs_pytorch = cmp;
  }

  if (a.bench) {
    const perModel = {};
    for (const n of NAMES) {
      for (let i = 0; i < a.warmup; i++) await run(n);
      const ms = [];
      for (let i = 0; i < a.iters; i++) {
        const t = performance.now();
        await run(n);
        ms.push(performance.now() - t);
      }
      perModel[n] = quantiles(ms);
    }
    const perMode = {};
    for (const [mode, ms_] of Object.entries(MODES)) {
      if (!ms_.every(n => NAMES.includes(n))) continue;
      for (let i = 0; i < a.warmup; i++) for (const n of ms_) await run(n);
      const ms = [];
      for (let i = 0; i < a.iters; i++) {
        const t = performance.now();
        for (const n of ms_) await run(n);
        ms.push(performance.now() - t);
      }
      perMode[mode] = quantiles(ms);
    }
    Object.assign(out, { iters: a.iters, warmup: a.warmup, per_model: perModel, per_mode: perMode });
  }
  out.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024 * 10) / 10;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(e => { process.stderr.write(`ort_runner: ${e.stack || e}\n`); process.exit(1); });
