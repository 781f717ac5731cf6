// MediaPipe's own hand pipeline on the check's images, in the page. Two ways of running it:
// the npm `Hands` class exactly as shipped (one image, as the reference that the second way
// must reproduce), and the npm `Solution` class with the same files, options and wasm but the
// top-level graph from hands_wasm.py, which also exposes the palm detections and hand ROIs and
// sets USE_PREV_LANDMARKS (false: every image alone, as static_image_mode; true: video).
'use strict';

const post = (where, body) =>
  fetch(where, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });
const log = (msg) => post('/log', msg);
// Every file the solution asks for, so the results say which wasm build (SIMD or not) ran.
const requested = new Set();
const locateFile = (file) => {
  requested.add(file);
  return (file.endsWith('.binarypb') && file !== 'hands.binarypb' ? '/work/' : '/solution/') + file;
};

// Minimal protobuf reading for what the graph hands out as serialized protos:
// mediapipe.NormalizedRect (x_center 1, y_center 2, height 3, width 4, rotation 5) and
// mediapipe.ClassificationList (classification 1 → score 2, label 3) and
// mediapipe.NormalizedLandmarkList (landmark 1 → x 1, y 2, z 3).
function protoFields(bytes) {
  const out = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let i = 0;
  const varint = () => {
    let n = 0, mul = 1, b;
    do { b = bytes[i++]; n += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
    return n;
  };
  while (i < bytes.length) {
    const key = varint();
    const num = Math.floor(key / 8), wt = key & 7;
    if (wt === 0) out.push([num, wt, varint()]);
    else if (wt === 5) { out.push([num, wt, view.getFloat32(i, true)]); i += 4; }
    else if (wt === 1) { out.push([num, wt, view.getFloat64(i, true)]); i += 8; }
    else if (wt === 2) { const n = varint(); out.push([num, wt, bytes.subarray(i, i + n)]); i += n; }
    else throw new Error(`protobuf wire type ${wt}`);
  }
  return out;
}
const toBytes = (p) => (typeof p === 'string' ? Uint8Array.from(p, (c) => c.charCodeAt(0)) : new Uint8Array(p));
function floatsOf(fields, num) {
  const vals = [];
  for (const [n, wt, v] of fields) {
    if (n !== num) continue;
    if (wt === 5) vals.push(v);
    else if (wt === 2) { // packed
      const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
      for (let k = 0; k + 4 <= v.length; k += 4) vals.push(dv.getFloat32(k, true));
    }
  }
  return vals;
}
const oneFloat = (fields, num) => floatsOf(fields, num)[0] ?? 0;
const messageOf = (fields, num) => { const f = fields.find(([n, wt]) => n === num && wt === 2); return f ? f[2] : new Uint8Array(0); };

function decodeRect(p) {
  const r = protoFields(toBytes(p));
  return { x_center: oneFloat(r, 1), y_center: oneFloat(r, 2), width: oneFloat(r, 4), height: oneFloat(r, 3), rotation: oneFloat(r, 5) };
}

function decodeLandmarks(p) {
  return protoFields(toBytes(p)).filter(([n, wt]) => n === 1 && wt === 2).map(([, , m]) => {
    const f = protoFields(m);
    return { x: oneFloat(f, 1), y: oneFloat(f, 2), z: oneFloat(f, 3) };
  });
}
function decodeTopClass(p) {
  const c = protoFields(messageOf(protoFields(toBytes(p)), 1));
  return { score: oneFloat(c, 2), label: new TextDecoder().decode(messageOf(c, 3)) };
}

// The wasm turns a std::vector<Detection> into a list object: each detection's relative box as a
// NormalizedRect (centre and size) and its scores as a ClassificationList.
function decodeDetections(list) {
  const rects = list.getRectList(), scores = list.getClassificationsList();
  const out = [];
  for (let i = 0; i < rects.size(); i++) {
    const r = decodeRect(rects.get(i));
    const c = protoFields(messageOf(protoFields(toBytes(scores.get(i))), 1));
    out.push({ score: oneFloat(c, 2), box: [r.x_center - r.width / 2, r.y_center - r.height / 2, r.width, r.height] });
  }
  return out;
}

const OUTS = {
  landmarks: { type: 'proto_list', stream: 'multi_hand_landmarks', transform: (l) => l.map(decodeLandmarks) },
  handedness: { type: 'proto_list', stream: 'multi_handedness', transform: (l) => l.map(decodeTopClass) },
  palms: { type: 'proto', stream: 'palm_detections', transform: decodeDetections },
  roisFromPalms: { type: 'proto_list', stream: 'hand_rects_from_palm_detections', transform: (l) => l.map(decodeRect) },
  rois: { type: 'proto_list', stream: 'hand_rects_from_landmarks', transform: (l) => l.map(decodeRect) },
};

// The option table of the npm Hands class (hands.js), with its model file switch.
function handsOptions(solution) {
  return {
    useCpuInference: { type: 0, graphOptionXref: { calculatorType: 'InferenceCalculator', fieldName: 'use_cpu_inference' } },
    selfieMode: { type: 0, graphOptionXref: { calculatorType: 'GlScalerCalculator', calculatorIndex: 1, fieldName: 'flip_horizontal' } },
    maxNumHands: { type: 1, graphOptionXref: { calculatorType: 'ConstantSidePacketCalculator', calculatorName: 'ConstantSidePacketCalculator', fieldName: 'int_value' } },
    modelComplexity: {
      type: 1,
      graphOptionXref: { calculatorType: 'ConstantSidePacketCalculator', calculatorName: 'ConstantSidePacketCalculatorModelComplexity', fieldName: 'int_value' },
      onChange: async (c) => {
        const file = c === 1 ? 'hand_landmark_full.tflite' : 'hand_landmark_lite.tflite';
        const data = await fetch(locateFile(file)).then((r) => r.arrayBuffer());
        solution.overrideFile(`third_party/mediapipe/modules/hand_landmark/${file}`, data);
        return true;
      },
    },
    minDetectionConfidence: { type: 1, graphOptionXref: { calculatorType: 'TensorsToDetectionsCalculator', calculatorName: 'handlandmarktrackinggpu__palmdetectiongpu__TensorsToDetectionsCalculator', fieldName: 'min_score_thresh' } },
    minTrackingConfidence: { type: 1, graphOptionXref: { calculatorType: 'ThresholdingCalculator', calculatorName: 'handlandmarktrackinggpu__handlandmarkgpu__ThresholdingCalculator', fieldName: 'threshold' } },
  };
}

function exposedSolution(graph) {
  const holder = {};
  const solution = new Solution({
    locateFile,
    files: (o) => [
      { url: 'hands_solution_packed_assets_loader.js' },
      { simd: false, url: 'hands_solution_wasm_bin.js' },
      { simd: true, url: 'hands_solution_simd_wasm_bin.js' },
      { data: true, url: o.modelComplexity === 1 ? 'hand_landmark_full.tflite' : 'hand_landmark_lite.tflite' },
    ],
    graph: { url: graph },
    inputs: { image: { type: 'video', stream: 'input_frames_gpu' } },
    // The image stream has a packet on every frame, so the listener is called on frames without
    // hands too (it is not among the outputs: no read-back).
    listeners: [{ wants: ['image_transformed', ...Object.values(OUTS).map((o) => o.stream)], outs: Object.fromEntries(Object.entries(OUTS).map(([k, o]) => [k, { type: o.type, stream: o.stream, transform: o.transform }])) }],
    options: handsOptions(holder),
  });
  holder.overrideFile = (p, d) => solution.overrideFile(p, d);
  return solution;
}

const loadImage = async (file) => { const img = new Image(); img.src = `/work/${file}`; await img.decode(); return img; };
const pixels = (lms, w, h) => lms.map((p) => [p.x * w, p.y * h, p.z]);

async function runFrames(solution, options, frames, decode) {
  let last = null;
  solution.onResults((r) => { last = r; });
  solution.setOptions(options);
  await solution.initialize();
  const out = [];
  for (let k = 0; k < frames.length; k++) {
    const f = frames[k];
    const img = await loadImage(f.file);
    last = null;
    // Timestamps 1/30 s apart: the legacy graph's tracking does not depend on them, but they must grow.
    await solution.send({ image: img }, (k + 1) * 33.333);
    if (!last) throw new Error(`no results for ${f.file}`);
    out.push({ file: f.file, width: img.naturalWidth, height: img.naturalHeight, ...decode(last, img) });
  }
  await solution.close();
  return out;
}

function decodeExposed(r, img) {
  const w = img.naturalWidth, h = img.naturalHeight;
  const lms = r.landmarks || [];
  return {
    hands: lms.map((l, i) => {
      const c = (r.handedness || [])[i];
      return { label: c && c.label, score: c && c.score, landmarks: pixels(l, w, h) };
    }),
    palms: r.palms || [], rois_from_palms: r.roisFromPalms || [], rois: r.rois || [],
  };
}

async function main() {
  const manifest = await fetch('/work/manifest.json').then((r) => r.json());
  const opts = manifest.options;
  const result = { version: VERSION, user_agent: navigator.userAgent, options: opts };
  const gl = document.createElement('canvas').getContext('webgl2');
  const dbg = gl && gl.getExtension('WEBGL_debug_renderer_info');
  result.webgl = gl ? (dbg ? gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)) : null;

  // The npm class as shipped, on the first image.
  const stock = new Hands({ locateFile });
  result.stock = await runFrames(stock, opts, manifest.images.slice(0, 1), (r, img) => ({
    hands: (r.multiHandLandmarks || []).map((l, i) => ({
      label: r.multiHandedness[i].label, score: r.multiHandedness[i].score, landmarks: pixels(l, img.naturalWidth, img.naturalHeight),
    })),
  }));
  await log('npm Hands ran');
  result.images = await runFrames(exposedSolution('hands_images.binarypb'), opts, manifest.images, decodeExposed);
  await log(`${result.images.length} images ran`);
  result.video = await runFrames(exposedSolution('hands_video.binarypb'), opts, manifest.video, decodeExposed);
  await log(`${result.video.length} video frames ran`);
  result.files = [...requested].sort();
  await post('/result', result);
}

window.addEventListener('error', (e) => post('/error', String(e.message)));
main().catch((e) => post('/error', String((e && e.stack) || e)));
