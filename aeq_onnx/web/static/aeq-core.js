/* aeq-core.js: the explainer contract, preprocessing and heatmaps in plain JavaScript, for the
 * page written by `aeq web` and for examples/node. Mirrors aeq_onnx/render/presets.py (Preset,
 * input_spec, resize_and_crop, preprocess) and aeq_onnx/render/imaging.py (channel_sum, normalise,
 * colorize, heatmap_rgb, overlay) operation for operation: Pillow's fixed-point bilinear
 * resampling, Python's round-half-to-even, float32 normalisation, numpy's linear percentile.
 * tests/web/ compares both sides. No dependencies; works as a browser script (window.AeqCore)
 * and as a CommonJS module. */
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else root.AeqCore = factory();
}(typeof self !== 'undefined' ? self : this, function () {
  'use strict';

  const PRESET_KEY = 'aeq_onnx.preset';
  const IMAGENET_MEAN = [0.485, 0.456, 0.406];
  const IMAGENET_STD = [0.229, 0.224, 0.225];
  const PRESETS = {
    imagenet: { name: 'imagenet', mean: IMAGENET_MEAN, std: IMAGENET_STD, crop_fraction: 0.875,
      size: null, default_size: 224 },
    inception: { name: 'inception', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
      crop_fraction: 0.875, size: null, default_size: 299 },
    unit: { name: 'unit', mean: [0, 0, 0], std: [1, 1, 1], crop_fraction: 1.0, size: null,
      default_size: 224 },
  };

  /** Python's round(): halves go to the even neighbour (as np.round and round()). */
  function roundHalfEven(x) {
    const r = Math.round(x);
    return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
  }

  /** A preset from its JSON (Preset.to_json) or a name; throws on anything malformed. */
  function getPreset(value) {
    if (value === null || value === undefined) return PRESETS.imagenet;
    if (typeof value === 'object') return checkPreset(value);
    const text = String(value).trim();
    if (text.startsWith('{')) return checkPreset(JSON.parse(text));
    if (!(text in PRESETS)) throw new Error(`unknown preset '${text}'; known: ${Object.keys(PRESETS).join(', ')}`);
    return PRESETS[text];
  }

  function checkPreset(data) {
    const nums = (v) => { if (!Array.isArray(v) || !v.every(Number.isFinite)) throw new Error(`invalid preset ${JSON.stringify(data)}`); return v.map(Number); };
    const size = data.size === null || data.size === undefined ? null : Math.trunc(data.size);
    return { name: String(data.name), mean: nums(data.mean), std: nums(data.std),
      crop_fraction: data.crop_fraction === undefined ? 0.875 : Number(data.crop_fraction),
      size, default_size: data.default_size === undefined ? 224 : Math.trunc(data.default_size) };
  }

  /** input_spec: layout, channels and size from a rank-4 input shape (dims may be symbolic). */
  function inputSpec(shape, preset) {
    if (shape.length !== 4) throw new Error(`the model input has shape [${shape}]; an image model needs rank 4`);
    const d = shape.map((v) => (Number.isInteger(v) && v > 0 ? v : null));
    const ch = (v) => v === 1 || v === 3;
    let layout;
    if (ch(d[1]) && !ch(d[3])) layout = 'NCHW';
    else if (ch(d[3]) && !ch(d[1])) layout = 'NHWC';
    else if (ch(d[1])) layout = 'NCHW';
    else throw new Error(`cannot tell the channel axis of input shape [${shape}] (1 or 3 channels expected at axis 1 or 3)`);
    const channels = layout === 'NCHW' ? d[1] : d[3];
    const [h, w] = layout === 'NCHW' ? [d[2], d[3]] : [d[1], d[2]];
    const fallback = preset.size || preset.default_size;
    if (h !== null && w !== null && preset.size !== null && (h !== preset.size || w !== preset.size)) {
      throw new Error(`preset size ${preset.size} does not match the model's input ${h}x${w}`);
    }
    return { layout, channels, height: h || fallback, width: w || fallback };
  }

  // ------------------------------------------------------------------ Pillow's BILINEAR resize
  const PRECISION_BITS = 32 - 8 - 2;

  /** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1). */
  function coefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterscale = Math.max(scale, 1.0);
    const support = 1.0 * filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    const bounds = new Int32Array(outSize * 2);
    const kk = new Int32Array(outSize * ksize);
    const k = new Float64Array(ksize);
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      const ss = 1.0 / filterscale;
      let ww = 0.0;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
      for (let x = 0; x < xmax; x++) {
        let t = Math.abs((x + xmin - center + 0.5) * ss);
        t = t < 1.0 ? 1.0 - t : 0.0;
        k[x] = t;
        ww += t;
      }
      for (let x = 0; x < ksize; x++) {
        const v = x < xmax ? (ww !== 0.0 ? k[x] / ww : k[x]) : 0;
        kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS))
          : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    return { ksize, bounds, kk };
  }

  function clip8(ss) {
    const v = ss >> PRECISION_BITS;
    return v < 0 ? 0 : (v > 255 ? 255 : v);
  }

  /** One horizontal pass over ``rows`` rows starting at row ``first`` of ``src``. */
  function passHorizontal(src, srcW, bands, first, rows, newW, hc) {
    const out = new Uint8Array(newW * rows * bands);
    for (let yy = 0; yy < rows; yy++) {
      const rowIn = (yy + first) * srcW * bands;
      for (let xx = 0; xx < newW; xx++) {
        const xmin = hc.bounds[xx * 2];
        const xmax = hc.bounds[xx * 2 + 1];
        const kOff = xx * hc.ksize;
        for (let b = 0; b < bands; b++) {
          let ss = 1 << (PRECISION_BITS - 1);
          for (let x = 0; x < xmax; x++) ss += src[rowIn + (x + xmin) * bands + b] * hc.kk[kOff + x];
          out[(yy * newW + xx) * bands + b] = clip8(ss);
        }
      }
    }
    return out;
  }

  /** One vertical pass: ``newH`` rows from ``src`` (``srcW`` wide), row bounds ``bounds``. */
  function passVertical(src, srcW, bands, newH, bounds, vc) {
    const out = new Uint8Array(srcW * newH * bands);
    for (let yy = 0; yy < newH; yy++) {
      const ymin = bounds[yy * 2];
      const ymax = bounds[yy * 2 + 1];
      const kOff = yy * vc.ksize;
      for (let xx = 0; xx < srcW; xx++) {
        for (let b = 0; b < bands; b++) {
          let ss = 1 << (PRECISION_BITS - 1);
          for (let y = 0; y < ymax; y++) ss += src[((y + ymin) * srcW + xx) * bands + b] * vc.kk[kOff + y];
          out[(yy * srcW + xx) * bands + b] = clip8(ss);
        }
      }
    }
    return out;
  }

  /** Resize interleaved 8-bit pixels ``{data, width, height, bands}`` with Pillow's BILINEAR
   * (Image.resize): two fixed-point passes, each rounded to 8 bits. Pillow >= 13 runs the
   * vertical pass first when the height shrinks by more than twice as many pixels as the width
   * (``ysize < h && h - ysize > 2 * (w - xsize)``); older Pillow always ran horizontal first. */
  function resizeBilinear(img, newW, newH) {
    const { width: w, height: h, bands } = img;
    if (w === newW && h === newH) return { data: img.data.slice(), width: w, height: h, bands };
    const needH = newW !== w;
    const needV = newH !== h;
    const vc = coefficients(h, newH);
    const hc = needH ? coefficients(w, newW) : null;
    const done = (data) => ({ data, width: newW, height: newH, bands });
    const verticalFirst = newH < h && h - newH > 2 * (w - newW);
    if (verticalFirst) {
      const tall = passVertical(img.data, w, bands, newH, vc.bounds, vc);
      return done(needH ? passHorizontal(tall, w, bands, 0, newH, newW, hc) : tall);
    }
    if (!needH) return done(passVertical(img.data, w, bands, newH, vc.bounds, vc));
    const first = vc.bounds[0];
    const last = vc.bounds[newH * 2 - 2] + vc.bounds[newH * 2 - 1];
    const shifted = Int32Array.from(vc.bounds, (v, i) => (i % 2 === 0 ? v - first : v));
    const wide = passHorizontal(img.data, w, bands, first, last - first, newW, hc);
    return done(needV ? passVertical(wide, newW, bands, newH, shifted, vc) : wide);
  }

  function cropPixels(img, left, top, width, height) {
    const { bands } = img;
    const out = new Uint8Array(width * height * bands);
    for (let y = 0; y < height; y++) {
      const start = ((y + top) * img.width + left) * bands;
      out.set(img.data.subarray(start, start + width * bands), y * width * bands);
    }
    return { data: out, width, height, bands };
  }

  /** resize_and_crop: the deciding side gets int(size / crop_fraction), then a centre crop. */
  function resizeAndCrop(img, height, width, cropFraction) {
    const wantH = Math.trunc(height / cropFraction);
    const wantW = Math.trunc(width / cropFraction);
    let newH;
    let newW;
    if (wantH / img.height >= wantW / img.width) {
      newH = wantH;
      newW = Math.trunc(wantH * img.width / img.height);
    } else {
      newH = Math.trunc(wantW * img.height / img.width);
      newW = wantW;
    }
    newH = Math.max(newH, height);
    newW = Math.max(newW, width);
    const resized = resizeBilinear(img, newW, newH);
    const left = roundHalfEven((newW - width) / 2.0);
    const top = roundHalfEven((newH - height) / 2.0);
    return cropPixels(resized, left, top, width, height);
  }

  /** Pillow's RGB -> L (ITU-R 601-2 luma in 16-bit fixed point). */
  function toGrey(rgb) {
    const n = rgb.width * rgb.height;
    const out = new Uint8Array(n);
    const d = rgb.data;
    for (let i = 0; i < n; i++) {
      out[i] = (d[3 * i] * 19595 + d[3 * i + 1] * 38470 + d[3 * i + 2] * 7471 + 0x8000) >>> 16;
    }
    return { data: out, width: rgb.width, height: rgb.height, bands: 1 };
  }

  function greyToRgb(grey) {
    const out = new Uint8Array(grey.width * grey.height * 3);
    for (let i = 0; i < grey.data.length; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = grey.data[i];
    return { data: out, width: grey.width, height: grey.height, bands: 3 };
  }

  /** RGBA bytes (canvas getImageData, a decoded PNG) as RGB; alpha is dropped as
   * Pillow's convert("RGB") does. */
  function rgbaToRgb(rgba, width, height) {
    const out = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; i < width * height; i++, j += 4) {
      out[3 * i] = rgba[j]; out[3 * i + 1] = rgba[j + 1]; out[3 * i + 2] = rgba[j + 2];
    }
    return { data: out, width, height, bands: 3 };
  }

  /** preprocess: RGB pixels -> the float32 sample in the model's layout (no batch axis) and
   * the resized, cropped RGB photo the model sees. */
  function preprocess(rgb, preset, spec) {
    const source = spec.channels === 1 ? toGrey(rgb) : rgb;
    const crop = resizeAndCrop(source, spec.height, spec.width, preset.crop_fraction);
    const { height: H, width: W } = spec;
    const C = spec.channels;
    const f = Math.fround;
    const mean = preset.mean.slice(0, C).map(f);
    const std = preset.std.slice(0, C).map(f);
    const x = new Float32Array(C * H * W);
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < W; xx++) {
        for (let c = 0; c < C; c++) {
          const v = f(crop.data[(y * W + xx) * C + c] / 255);
          const z = f(f(v - mean[c]) / std[c]);
          x[spec.layout === 'NCHW' ? (c * H + y) * W + xx : (y * W + xx) * C + c] = z;
        }
      }
    }
    return { tensor: x, photo: C === 1 ? greyToRgb(crop) : crop };
  }

  // ------------------------------------------------------------------------------ heatmaps
  /** The 255-entry blue-white-red table of imaging.COLORMAP (np.linspace, np.round). */
  const COLORMAP = (function () {
    const table = new Uint8Array(255 * 3);
    const step = 1.0 / 254;
    for (let i = 0; i < 255; i++) {
      const t = i === 254 ? 1.0 : i * step;
      const rgb = [Math.min(Math.max(2 * t, 0), 1), 1 - Math.abs(2 * t - 1), Math.min(Math.max(2 - 2 * t, 0), 1)];
      for (let c = 0; c < 3; c++) table[3 * i + c] = roundHalfEven(255 * rgb[c]);
    }
    return table;
  }());

  /** channel_sum: one sample's relevance summed over channels (float64, H*W). */
  function channelSum(relevance, spec) {
    const { height: H, width: W, channels: C } = spec;
    const out = new Float64Array(H * W);
    for (let i = 0; i < H * W; i++) {
      let s = spec.layout === 'NCHW' ? relevance[i] : relevance[i * C];
      for (let c = 1; c < C; c++) s += spec.layout === 'NCHW' ? relevance[c * H * W + i] : relevance[i * C + c];
      out[i] = s;
    }
    return out;
  }

  /** np.percentile(values, p) with the default 'linear' method, bit for bit. */
  function percentile(values, p) {
    const n = values.length;
    const sorted = Float64Array.from(values).sort();
    const v = (n - 1) * (p / 100);
    let lo = Math.floor(v);
    let hi = lo + 1;
    if (v >= n - 1) { lo = n - 1; hi = n - 1; } else if (v < 0) { lo = 0; hi = 0; }
    const t = v - lo;
    const a = sorted[lo];
    const d = sorted[hi] - a;
    return t >= 0.5 ? sorted[hi] - d * (1 - t) : a + d * t;
  }

  /** normalise: heat / v clipped to [-1, 1], v the percentile of |heat| (else its max). */
  function normalise(heat, pct = 99.5) {
    const finite = Float64Array.from(heat, (x) => (Number.isFinite(x) ? x : 0));
    const abs = finite.map(Math.abs);
    let v = finite.length ? percentile(abs, pct) : 0;
    if (!(v > 0)) v = abs.reduce((m, x) => (x > m ? x : m), 0);
    if (!(v > 0)) return new Float64Array(finite.length);
    return finite.map((x) => Math.min(Math.max(x / v, -1), 1));
  }

  /** colorize: values in [-1, 1] as RGB bytes through COLORMAP. */
  function colorize(scaled) {
    const out = new Uint8Array(scaled.length * 3);
    for (let i = 0; i < scaled.length; i++) {
      const idx = roundHalfEven((Math.min(Math.max(scaled[i], -1), 1) + 1) * 127);
      out.set(COLORMAP.subarray(3 * idx, 3 * idx + 3), 3 * i);
    }
    return out;
  }

  /** heatmap_rgb: the relevance's heatmap as RGB bytes (H*W*3). */
  function heatmapRgb(relevance, spec, pct = 99.5) {
    return colorize(normalise(channelSum(relevance, spec), pct));
  }

  /** overlay: the heatmap over the grey photo, weight alpha*|scaled| (photo: the crop). */
  function overlayRgb(photo, relevance, spec, pct = 99.5, alpha = 0.85) {
    const scaled = normalise(channelSum(relevance, spec), pct);
    const color = colorize(scaled);
    const grey = toGrey(resizeBilinear(photo, spec.width, spec.height));
    const out = new Uint8Array(scaled.length * 3);
    for (let i = 0; i < scaled.length; i++) {
      const weight = alpha * Math.abs(scaled[i]);
      for (let c = 0; c < 3; c++) {
        out[3 * i + c] = roundHalfEven(grey.data[i] * (1 - weight) + color[3 * i + c] * weight);
      }
    }
    return out;
  }

  /** RGB bytes as RGBA (for canvas putImageData). */
  function rgbToRgba(rgb) {
    const n = rgb.length / 3;
    const out = new Uint8ClampedArray(n * 4);
    for (let i = 0; i < n; i++) {
      out[4 * i] = rgb[3 * i]; out[4 * i + 1] = rgb[3 * i + 1]; out[4 * i + 2] = rgb[3 * i + 2]; out[4 * i + 3] = 255;
    }
    return out;
  }

  /** Softmax probabilities (float64) and the k best classes, best first (ties: lower index). */
  function topK(logits, k) {
    let max = -Infinity;
    for (const v of logits) if (v > max) max = v;
    const e = Array.from(logits, (v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
    return order.slice(0, k).map((i) => ({ index: i, logit: logits[i], prob: e[i] / sum }));
  }

  // ------------------------------------------------------------------ the ONNX file, minimal
  /** Read a protobuf message's fields: [fieldNumber, wireType, value|[start, end]]. */
  function* fields(buf, start, end) {
    let pos = start;
    const varint = () => {
      let result = 0;
      let mul = 1;
      for (;;) {
        if (pos >= end) throw new Error('truncated ONNX file');
        const b = buf[pos++];
        result += (b & 0x7f) * mul;
        if (b < 0x80) return result;
        mul *= 128;
      }
    };
    while (pos < end) {
      const key = varint();
      const field = Math.floor(key / 8);
      const wire = key & 7;
      if (wire === 0) yield [field, wire, varint()];
      else if (wire === 2) {
        const len = varint();
        if (pos + len > end) throw new Error('truncated ONNX file');
        yield [field, wire, [pos, pos + len]];
        pos += len;
      } else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else throw new Error('not an ONNX file (bad protobuf wire type)');
    }
  }

  const utf8 = (buf, [s, e]) => new TextDecoder().decode(buf.subarray(s, e));

  function valueInfo(buf, span) {
    const info = { name: '', elemType: 0, shape: null };
    for (const [f, , v] of fields(buf, ...span)) {
      if (f === 1) info.name = utf8(buf, v);
      if (f !== 2) continue;
      for (const [tf, , tv] of fields(buf, ...v)) {
        if (tf !== 1) continue; // tensor_type
        for (const [ff, , fv] of fields(buf, ...tv)) {
          if (ff === 1) info.elemType = fv;
          if (ff !== 2) continue;
          info.shape = [];
          for (const [df, , dv] of fields(buf, ...fv)) {
            if (df !== 1) continue;
            let dim = null;
            for (const [xf, , xv] of fields(buf, ...dv)) {
              if (xf === 1) dim = xv;
              if (xf === 2) dim = utf8(buf, xv);
            }
            info.shape.push(dim);
          }
        }
      }
    }
    return info;
  }

  /** Metadata, graph inputs and outputs of an ONNX file (bytes), skipping the weights. */
  function readModelInfo(bytes) {
    const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
    const info = { metadata: {}, inputs: [], outputs: [], initializers: new Set(), irVersion: 0 };
    for (const [f, w, v] of fields(buf, 0, buf.length)) {
      if (f === 1 && w === 0) info.irVersion = v;
      if (f === 14 && w === 2) {
        let key = '';
        let value = '';
        for (const [ef, , ev] of fields(buf, ...v)) {
          if (ef === 1) key = utf8(buf, ev);
          if (ef === 2) value = utf8(buf, ev);
        }
        info.metadata[key] = value;
      }
      if (f !== 7 || w !== 2) continue;
      for (const [gf, gw, gv] of fields(buf, ...v)) {
        if (gw !== 2) continue;
        if (gf === 11) info.inputs.push(valueInfo(buf, gv));
        if (gf === 12) info.outputs.push(valueInfo(buf, gv));
        if (gf === 5) {
          for (const [tf, , tv] of fields(buf, ...gv)) if (tf === 8) info.initializers.add(utf8(buf, tv));
        }
      }
    }
    return info;
  }

  /** What the page and the Node example need from an explainer file: the data input, its
   * spec, the preset (stored, else `presetOverride`, else imagenet), the class count. */
  function explainerInfo(bytes, presetOverride) {
    const info = readModelInfo(bytes);
    if (!('aeq_onnx.method' in info.metadata)) {
      throw new Error('not an aeq_onnx explainer (no aeq_onnx.method metadata); build one with `aeq build`');
    }
    const inputs = info.inputs.filter((i) => !info.initializers.has(i.name));
    const wanted = info.metadata['aeq_onnx.input'];
    const data = inputs.find((i) => i.name === wanted) || inputs.find((i) => i.name !== 'target');
    const names = info.outputs.map((o) => o.name);
    for (const need of ['logits', 'target_class', 'relevance']) {
      if (!names.includes(need)) throw new Error(`the explainer has no '${need}' output (explainer contract)`);
    }
    if (!data || !data.shape || !inputs.some((i) => i.name === 'target')) {
      throw new Error('the explainer lacks its data input or its target input (explainer contract)');
    }
    const stored = info.metadata[PRESET_KEY];
    const preset = getPreset(presetOverride != null ? presetOverride : (stored || 'imagenet'));
    const spec = inputSpec(data.shape, preset);
    const logits = info.outputs.find((o) => o.name === 'logits');
    const k = logits.shape && Number.isInteger(logits.shape[1]) ? logits.shape[1] : null;
    return { input: data.name, shape: data.shape, preset, presetStored: Boolean(stored), spec,
      classes: k, metadata: info.metadata };
  }

  /** A float32 array as .npy bytes (little-endian '<f4', C order), as np.save writes it. */
  function npyBytes(array, shape) {
    const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
    let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
    const pad = 64 - ((10 + header.length + 1) % 64);
    header += ' '.repeat(pad) + '\n';
    const out = new Uint8Array(10 + header.length + array.byteLength);
    out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
    for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
    out.set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), 10 + header.length);
    return out;
  }

  /** The relevance's shape for one sample in the model's layout. */
  function sampleShape(spec) {
    const { channels: C, height: H, width: W } = spec;
    return spec.layout === 'NCHW' ? [C, H, W] : [H, W, C];
  }

  return { PRESET_KEY, PRESETS, roundHalfEven, getPreset, inputSpec, resizeBilinear,
    resizeAndCrop, toGrey, rgbaToRgb, preprocess, COLORMAP, channelSum, percentile, normalise,
    colorize, heatmapRgb, overlayRgb, rgbToRgba, topK, readModelInfo, explainerInfo, npyBytes,
    sampleShape };
}));
