#!/usr/bin/env node
/* Explain photos with an aeq_onnx explainer in Node: onnxruntime-node runs the explainer file,
 * aeq-core.js (the same code as the `aeq web` page) preprocesses with the preset stored in the
 * explainer and draws the heatmap and overlay exactly as `aeq explain` does; sharp decodes the
 * photo (libjpeg-turbo, EXIF orientation applied: the same pixels as Pillow) and writes PNGs.
 *
 *   npm ci --ignore-scripts          # once, in examples/node
 *   node explain.js EXPLAINER.onnx PHOTO... [-o OUT] [--target K] [--labels FILE] [--json]
 *
 * Writes OUT/<photo>.<class>-<name>.heatmap.png, .overlay.png and .npy (the raw relevance,
 * the model's layout, as np.save writes it). */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const ort = require('onnxruntime-node');
const sharp = require('sharp');
const core = require(path.join(__dirname, '..', '..', 'aeq_onnx', 'web', 'static', 'aeq-core.js'));

const USAGE = 'usage: node explain.js EXPLAINER.onnx PHOTO... [-o OUT] [--target K] [--labels FILE] '
  + '[--preset NAME|JSON] [--threads N] [--repeat N] [--save-input] [--json]';

function parseArgs(argv) {
  const opts = { out: 'aeq-node-out', target: -1, labels: null, preset: null, threads: 0, repeat: 1, saveInput: false, json: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    if (a === '-o' || a === '--out') opts.out = value();
    else if (a === '--target') opts.target = parseInt(value(), 10);
    else if (a === '--labels') opts.labels = value();
    else if (a === '--preset') opts.preset = value();
    else if (a === '--threads') opts.threads = parseInt(value(), 10);
    else if (a === '--repeat') opts.repeat = Math.max(1, parseInt(value(), 10));
    else if (a === '--save-input') opts.saveInput = true;
    else if (a === '--json') opts.json = true;
    else if (a === '-h' || a === '--help') { console.log(USAGE); process.exit(0); }
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else opts.files.push(a);
  }
  if (opts.files.length < 2 || !Number.isInteger(opts.target)) throw new Error(USAGE);
  return opts;
}

function loadLabels(file, classes) {
  const lines = (text) => text.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
  if (file) {
    const names = lines(fs.readFileSync(file, 'utf8'));
    if (classes && names.length !== classes) throw new Error(`${names.length} labels given, the model has ${classes} classes`);
    return names;
  }
  const imagenet = path.join(__dirname, '..', '..', 'aeq_onnx', 'data', 'imagenet_classes.txt');
  if (classes === 1000 && fs.existsSync(imagenet)) return lines(fs.readFileSync(imagenet, 'utf8'));
  return Array.from({ length: classes || 0 }, (_, k) => `class ${k}`);
}

/** The photo as RGB bytes: EXIF orientation applied, alpha dropped, grey expanded. */
async function decode(file) {
  const { data, info } = await sharp(file, { failOn: 'error' }).rotate().raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = data[i * info.channels + (info.channels < 3 ? 0 : c)];
  }
  return { data: rgb, width: info.width, height: info.height, bands: 3 };
}

function writePng(file, rgb, width, height) {
  return sharp(Buffer.from(rgb), { raw: { width, height, channels: 3 } }).png({ compressionLevel: 6 }).toFile(file);
}

function slug(text) {
  return text.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '').toLowerCase().slice(0, 40) || 'class';
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function explainOne(session, info, names, file, opts) {
  const { spec } = info;
  const { tensor, photo } = core.preprocess(await decode(file), info.preset, spec);
  const dims = spec.layout === 'NCHW' ? [1, spec.channels, spec.height, spec.width] : [1, spec.height, spec.width, spec.channels];
  const feeds = { [info.input]: new ort.Tensor('float32', tensor, dims), target: new ort.Tensor('int64', BigInt64Array.of(BigInt(opts.target)), [1]) };
  const times = [];
  let out;
  for (let r = 0; r < opts.repeat; r++) {
    const t0 = process.hrtime.bigint();
    out = await session.run(feeds, ['logits', 'target_class', 'relevance']);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const relevance = out.relevance.data;
  const target = Number(out.target_class.data[0]);
  const top5 = core.topK(out.logits.data, Math.min(5, out.logits.data.length));
  const base = path.join(opts.out, `${slug(path.parse(file).name) || 'image'}.${target}-${slug(names[target] || `class ${target}`)}`);
  fs.writeFileSync(`${base}.npy`, core.npyBytes(relevance, core.sampleShape(spec)));
  if (opts.saveInput) fs.writeFileSync(`${base}.input.npy`, core.npyBytes(tensor, core.sampleShape(spec)));
  await writePng(`${base}.heatmap.png`, core.heatmapRgb(relevance, spec), spec.width, spec.height);
  await writePng(`${base}.overlay.png`, core.overlayRgb(photo, relevance, spec), spec.width, spec.height);
  return { file, target, name: names[target], top5: top5.map((c) => ({ ...c, name: names[c.index] })),
    ms: median(times), times, files: { npy: `${base}.npy`, heatmap: `${base}.heatmap.png`, overlay: `${base}.overlay.png` } };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const [model, ...photos] = opts.files;
  const info = core.explainerInfo(fs.readFileSync(model), opts.preset);
  const session = await ort.InferenceSession.create(model, opts.threads ? { intraOpNumThreads: opts.threads } : {});
  const names = loadLabels(opts.labels, info.classes);
  fs.mkdirSync(opts.out, { recursive: true });
  const results = [];
  let failed = 0;
  for (const file of photos) {
    try {
      const r = await explainOne(session, info, names, file, opts);
      results.push(r);
      if (!opts.json) console.log(`${file}: ${r.name} (${r.target}) p=${r.top5[0].index === r.target ? r.top5[0].prob.toFixed(3) : '-'}  ${r.ms.toFixed(1)} ms  -> ${r.files.heatmap}`);
    } catch (err) {
      failed += 1;
      console.error(`${file}: ${err.message || err}`);
    }
  }
  if (opts.json) console.log(JSON.stringify({ preset: info.preset, spec: info.spec, onnxruntime: require('onnxruntime-node/package.json').version, results }));
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => { console.error(`error: ${err.message || err}`); process.exitCode = 1; });
