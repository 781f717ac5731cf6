// ONNX Runtime reference for test_quantize: runs MODEL on a float32 .npy input (all graph
// optimisations, so QDQ convolutions are folded into QLinearConv as in shoal) and writes the
// first output's raw float32 bytes.
// Usage: node ort_run_first_output.js NODE_MODULES MODEL.onnx INPUT.npy OUT.bin
'use strict';
const fs = require('fs');
const ort = require(process.argv[2] + '/onnxruntime-node');

function readNpyF32(path) {
  const b = fs.readFileSync(path);
  const headerLen = b.readUInt16LE(8);
  const header = b.slice(10, 10 + headerLen).toString();
  if (!header.includes("'<f4'")) throw new Error(`${path}: not float32`);
  const shape = header.match(/\(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  const d = b.slice(10 + headerLen);
  return { shape, data: new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.length)) };
}

(async () => {
  const s = await ort.InferenceSession.create(process.argv[3], { intraOpNumThreads: 2 });
  const x = readNpyF32(process.argv[4]);
  const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
  const t = r[s.outputNames[0]];
  fs.writeFileSync(process.argv[5], Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
})().catch(e => { console.error(e); process.exit(1); });
