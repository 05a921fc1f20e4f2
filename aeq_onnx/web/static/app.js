/* app.js: the page written by `aeq web`. Loads onnxruntime-web from ort/ (WebGPU when the
 * browser offers an adapter, else WebAssembly: multi-threaded when the page is cross-origin
 * isolated, single-threaded otherwise), opens explainer.onnx, and explains dropped photos with
 * the preprocessing and heatmaps of aeq-core.js. URL options: ?backend=wasm|webgpu, ?threads=N.
 * window.aeq exposes the state for scripted use (tests, benchmarks). */
(function () {
  'use strict';
  const config = window.AEQ_CONFIG;
  const core = window.AeqCore;
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const MAX_PIXELS = 2 * 89478485; // Pillow's DecompressionBombError limit
  const aeq = { config, cards: [], backend: null, session: null, info: null, pending: null };
  window.aeq = aeq;

  function status(text, isError) {
    const el = $('status');
    el.textContent = text;
    el.className = isError ? 'error' : '';
  }

  function mb(bytes) { return `${(bytes / 1e6).toFixed(1)} MB`; }

  function tooLarge(bytes) {
    return `This explainer (${mb(bytes)}) is too large for the browser: the page accepts up to ${mb(config.maxBytes)}. `
      + 'WebAssembly has at most 4 GB of memory, which holds the model, its weights and every intermediate '
      + 'tensor of the explanation. Run it with onnxruntime in Python, Node, C++, C# or Java instead (docs/runtimes.md).';
  }

  function isOutOfMemory(err) {
    return /out of memory|memory access out of bounds|Array buffer allocation failed|RangeError|Aborted\(|bad_alloc|OOM/i.test(String(err && (err.message || err)));
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = resolve;
      s.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.appendChild(s);
    });
  }

  async function webgpuAdapter() {
    if (!config.webgpu || !navigator.gpu) return false;
    try { return Boolean(await navigator.gpu.requestAdapter()); } catch (e) { return false; }
  }

  /** Pick and load the runtime; returns {name, threads, isolated, note}. */
  async function loadRuntime() {
    const wanted = params.get('backend') || 'auto';
    const gpu = wanted !== 'wasm' && (await webgpuAdapter());
    if (wanted === 'webgpu' && !gpu) throw new Error('?backend=webgpu: this browser offers no WebGPU adapter');
    await loadScript(gpu ? 'ort/ort.webgpu.min.js' : 'ort/ort.wasm.min.js');
    const isolated = Boolean(window.crossOriginIsolated);
    const asked = parseInt(params.get('threads') || '0', 10);
    const threads = isolated ? Math.max(1, asked || Math.min(navigator.hardwareConcurrency || 1, 8)) : 1;
    ort.env.wasm.wasmPaths = new URL('ort/', location.href).href;
    ort.env.wasm.numThreads = threads;
    const note = isolated ? '' : ' (the page is not cross-origin isolated: serve it with COOP/COEP headers for multi-threading)';
    return { name: gpu ? 'webgpu' : 'wasm', threads, isolated, note };
  }

  async function createSession(bytes, backend) {
    if (backend.name === 'webgpu') {
      try {
        return await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'] });
      } catch (err) {
        backend.note = ` (WebGPU failed: ${err.message || err}; fell back to WebAssembly)`;
        backend.name = 'wasm';
      }
    }
    return ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
  }

  function showBackend() {
    const { name, threads, note } = aeq.backend;
    $('backend-info').textContent = `Backend: onnxruntime-web ${config.ortVersion}, `
      + (name === 'webgpu' ? 'WebGPU' : `WebAssembly, ${threads} thread${threads > 1 ? 's' : ''}`) + note;
  }

  async function start() {
    if (location.protocol === 'file:') {
      throw new Error('This page must be served over http(s): browsers refuse WebAssembly threads, module '
        + 'workers and model downloads to file:// pages. In this folder run\n'
        + '  python3 -m aeq_onnx.web.serve .      (multi-threaded: sends COOP/COEP headers)\n'
        + 'or any static server, e.g.  python3 -m http.server  (single-threaded), and open the address it prints.');
    }
    if (config.modelBytes > config.maxBytes) throw new Error(tooLarge(config.modelBytes));
    status('Loading onnxruntime-web and the explainer…');
    const backend = await loadRuntime();
    const response = await fetch(config.model);
    if (!response.ok) throw new Error(`cannot load ${config.model}: HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length > config.maxBytes) throw new Error(tooLarge(bytes.length));
    const info = core.explainerInfo(bytes);
    let session;
    try {
      session = await createSession(bytes, backend);
    } catch (err) {
      throw new Error(isOutOfMemory(err) ? tooLarge(bytes.length) : `cannot open the explainer: ${err.message || err}`);
    }
    // the bytes stay only for a WebGPU session, which may have to reopen on WebAssembly
    Object.assign(aeq, { session, info, backend, modelBytes: backend.name === 'webgpu' ? bytes : null });
    const { spec, preset } = info;
    $('model-info').textContent = `${config.name} (${mb(bytes.length)}, ${info.metadata['aeq_onnx.method'] || 'ae'}), `
      + `input ${spec.layout} ${spec.channels}×${spec.height}×${spec.width}, preset ${preset.name}${info.presetStored ? '' : ' (default)'}, `
      + `${info.classes || '?'} classes`;
    showBackend();
    status('Ready: drop photos or choose them.');
  }

  /** Decode a photo (Blob/File) to RGB bytes, EXIF orientation applied, no colour management. */
  async function decode(blob) {
    const bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
    if (bitmap.width * bitmap.height > MAX_PIXELS) throw new Error(`${bitmap.width}×${bitmap.height} pixels is too large`);
    const canvas = document.createElement('canvas');
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    return core.rgbaToRgb(ctx.getImageData(0, 0, canvas.width, canvas.height).data, canvas.width, canvas.height);
  }

  aeq.decode = (blob) => decode(blob);

  /** WebGPU could not run the explainer (an op it accepts but cannot compute, e.g. MaxPool's
   * indices output in 1.30): reopen it on WebAssembly, which runs every op, and say so. */
  async function fallBackToWasm(err) {
    aeq.session = await ort.InferenceSession.create(aeq.modelBytes, { executionProviders: ['wasm'] });
    aeq.backend.name = 'wasm';
    aeq.backend.note = ` (WebGPU could not run this explainer: ${String(err.message || err).slice(0, 200)}; fell back to WebAssembly)`;
    showBackend();
  }

  /** One explainer run: logits, the class explained, relevance and the time it took. */
  async function run(tensor, target) {
    const { spec } = aeq.info;
    const dims = spec.layout === 'NCHW' ? [1, spec.channels, spec.height, spec.width] : [1, spec.height, spec.width, spec.channels];
    const feeds = { [aeq.info.input]: new ort.Tensor('float32', tensor, dims), target: new ort.Tensor('int64', BigInt64Array.of(BigInt(target)), [1]) };
    const fetches = ['logits', 'target_class', 'relevance'];
    let out;
    let ms;
    for (let attempt = 0; !out; attempt++) {
      const t0 = performance.now();
      try {
        out = await aeq.session.run(feeds, fetches);
        ms = performance.now() - t0;
      } catch (err) {
        if (isOutOfMemory(err)) throw new Error(tooLarge(config.modelBytes));
        if (aeq.backend.name !== 'webgpu' || attempt > 0) throw new Error(`the explainer failed: ${err.message || err}`);
        await fallBackToWasm(err);
      }
    }
    return { logits: out.logits.data, target: Number(out.target_class.data[0]), relevance: out.relevance.data, ms };
  }
  aeq.run = run;

  function label(k) { return (config.labels && config.labels[k]) || `class ${k}`; }
  function slug(text) { return (text.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '').toLowerCase().slice(0, 40)) || 'class'; }

  function paint(canvas, rgb, width, height) {
    canvas.width = width;
    canvas.height = height;
    canvas.getContext('2d').putImageData(new ImageData(core.rgbToRgba(rgb), width, height), 0, 0);
  }

  function el(tag, props, ...children) {
    const node = Object.assign(document.createElement(tag), props || {});
    for (const c of children) node.append(c);
    return node;
  }

  /** Draw a card's current explanation: heatmap, overlay, pressed class, download links. */
  async function render(card) {
    const { spec } = aeq.info;
    const { width: W, height: H } = spec;
    card.heat = core.heatmapRgb(card.relevance, spec, config.percentile);
    card.overlay = core.overlayRgb(card.photo, card.relevance, spec, config.percentile);
    paint(card.dom.heat, card.heat, W, H);
    paint(card.dom.overlay, card.overlay, W, H);
    for (const b of card.dom.classes.querySelectorAll('button')) b.setAttribute('aria-pressed', String(Number(b.dataset.class) === card.target));
    const base = `${slug(card.name.replace(/\.[^.]*$/, '')) || 'image'}.${card.target}-${slug(label(card.target))}`;
    card.dom.meta.textContent = `explained ${label(card.target)} (${card.target}) in ${card.ms.toFixed(0)} ms on ${aeq.backend.name}`;
    const links = card.dom.downloads;
    for (const a of links.querySelectorAll('a')) URL.revokeObjectURL(a.href);
    links.replaceChildren();
    const npy = new Blob([core.npyBytes(card.relevance, core.sampleShape(spec))], { type: 'application/octet-stream' });
    const png = (canvas) => new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    const [heat, over] = await Promise.all([png(card.dom.heat), png(card.dom.overlay)]);
    // what the links offer, by file name (as aeq explain names its files)
    card.files = { [`${base}.npy`]: npy, [`${base}.heatmap.png`]: heat, [`${base}.overlay.png`]: over };
    const texts = ['relevance .npy', 'heatmap PNG', 'overlay PNG'];
    for (const [i, [name, blob]] of Object.entries(card.files).entries()) {
      links.append(el('a', { href: URL.createObjectURL(blob), download: name, textContent: texts[i] }));
    }
  }

  async function explainClass(card, k) {
    card.dom.error.textContent = '';
    try {
      const result = await run(card.tensor, k);
      Object.assign(card, { relevance: result.relevance, target: result.target, ms: result.ms });
      await render(card);
    } catch (err) {
      card.dom.error.textContent = err.message || String(err);
    }
    return card;
  }

  function buildCard(name, batch) {
    const dom = { photo: el('canvas', { className: 'photo' }), heat: el('canvas'), overlay: el('canvas'),
      classes: el('ol', { className: 'classes' }), meta: el('p', { className: 'meta' }),
      downloads: el('p', { className: 'downloads' }), error: el('p', { className: 'error' }) };
    const fig = (canvas, caption) => el('figure', null, canvas, el('figcaption', { textContent: caption }));
    dom.root = el('article', { className: 'card' }, el('h2', { textContent: name }), dom.error,
      el('div', { className: 'maps' }, fig(dom.photo, 'what the model sees'), fig(dom.heat, 'heatmap'), fig(dom.overlay, 'overlay')),
      dom.classes, dom.meta, dom.downloads);
    batch.append(dom.root);
    return { name, dom };
  }

  async function explainFile(file, batch) {
    const card = buildCard(file.name || 'photo', batch);
    aeq.cards.push(card);
    try {
      const rgb = await decode(file);
      const { tensor, photo } = core.preprocess(rgb, aeq.info.preset, aeq.info.spec);
      Object.assign(card, { tensor, photo });
      paint(card.dom.photo, photo.data, photo.width, photo.height);
      const result = await run(tensor, -1);
      card.top5 = core.topK(result.logits, Math.min(5, result.logits.length));
      Object.assign(card, { logits: result.logits, relevance: result.relevance, target: result.target, ms: result.ms });
      for (const [rank, c] of card.top5.entries()) {
        const button = el('button', { type: 'button', textContent: `${rank + 1}. ${label(c.index)} (${c.index})  ${c.prob.toFixed(3)}` });
        button.dataset.class = String(c.index);
        button.addEventListener('click', () => enqueue(() => explainClass(card, c.index)));
        card.dom.classes.append(el('li', null, button));
      }
      await render(card);
    } catch (err) {
      card.dom.error.textContent = `cannot explain ${card.name}: ${err.message || err}`;
      card.error = card.dom.error.textContent;
    }
    return card;
  }

  async function explainFiles(files) {
    const done = [];
    const batch = el('div', { className: 'batch' });
    $('results').prepend(batch); // the newest photos first, each batch in its own order
    for (const [i, file] of [...files].entries()) {
      status(`Explaining ${i + 1}/${files.length}: ${file.name}…`);
      done.push(await explainFile(file, batch));
    }
    status(`Explained ${done.length} photo${done.length === 1 ? '' : 's'}. Click a class to explain it.`);
    return done;
  }
  /** Runs one after another (a session runs one explanation at a time); aeq.pending: the last. */
  let queue = Promise.resolve();
  function enqueue(task) {
    aeq.pending = queue.then(() => aeq.ready).then(task);
    queue = aeq.pending.catch(() => {});
    return aeq.pending;
  }
  aeq.explainFiles = (files) => enqueue(() => explainFiles(files));

  function wireInputs() {
    const drop = $('drop');
    $('picker').addEventListener('change', (e) => { aeq.explainFiles(e.target.files); e.target.value = ''; });
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const files = [...e.dataTransfer.files].filter((f) => f.type.startsWith('image/') || /\.(jpe?g|png|bmp|gif|webp)$/i.test(f.name));
      if (files.length) aeq.explainFiles(files);
    });
  }

  /** The example photos written with the site (aeq web --example), explained on opening. */
  async function explainExamples() {
    const files = [];
    for (const url of config.examples || []) {
      const response = await fetch(url);
      if (response.ok) files.push(new File([await response.blob()], url.split('/').pop()));
    }
    if (files.length) await aeq.explainFiles(files);
  }

  wireInputs();
  aeq.ready = start().catch((err) => {
    status(err.message || String(err), true);
    aeq.error = err.message || String(err);
    throw err;
  });
  aeq.examples = aeq.ready.then(() => explainExamples()).catch(() => {});
}());
