/* Runs aeq-core.js on cases read as JSON from stdin (tests/web/test_core_parity.py) and
 * prints the results as JSON: byte arrays and float arrays as base64. */
'use strict';
const path = require('node:path');
const core = require(path.join(__dirname, '..', '..', 'aeq_onnx', 'web', 'static', 'aeq-core.js'));

const bytes = (b64) => new Uint8Array(Buffer.from(b64, 'base64'));
const f32 = (b64) => { const b = Buffer.from(b64, 'base64'); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
const out = (array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength).toString('base64');

function run(c) {
  switch (c.kind) {
    case 'resize': {
      const r = core.resizeBilinear({ data: bytes(c.data), width: c.width, height: c.height, bands: c.bands }, c.newWidth, c.newHeight);
      return out(r.data);
    }
    case 'preprocess': {
      const preset = core.getPreset(c.preset);
      const spec = core.inputSpec(c.shape, preset);
      const r = core.preprocess({ data: bytes(c.data), width: c.width, height: c.height, bands: 3 }, preset, spec);
      return { tensor: out(r.tensor), photo: out(r.photo.data), spec };
    }
    case 'heatmap': {
      const spec = { layout: c.layout, channels: c.channels, height: c.height, width: c.width };
      const rel = f32(c.relevance);
      const photo = { data: bytes(c.photo), width: c.width, height: c.height, bands: 3 };
      return { heat: out(core.heatmapRgb(rel, spec, c.percentile)), overlay: out(core.overlayRgb(photo, rel, spec, c.percentile)) };
    }
    case 'percentile': return core.percentile(Float64Array.from(c.values), c.p);
    case 'colormap': return out(core.COLORMAP);
    case 'npy': return Buffer.from(core.npyBytes(f32(c.data), c.shape)).toString('base64');
    case 'topk': return core.topK(f32(c.logits), c.k);
    case 'info': {
      const info = core.explainerInfo(require('node:fs').readFileSync(c.path), c.preset);
      return { input: info.input, spec: info.spec, preset: info.preset, classes: info.classes, stored: info.presetStored };
    }
    case 'round': return c.values.map(core.roundHalfEven);
    default: throw new Error(`unknown case ${c.kind}`);
  }
}

let text = '';
process.stdin.on('data', (d) => { text += d; });
process.stdin.on('end', () => {
  const results = JSON.parse(text).map((c) => {
    try { return { ok: run(c) }; } catch (err) { return { error: String(err.message || err) }; }
  });
  process.stdout.write(JSON.stringify(results));
});
