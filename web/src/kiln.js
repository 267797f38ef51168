// Kiln in the browser: load a bundle (fetched, verified, cached) and run it on WebGPU.
//
//   import { Kiln } from '@kiln/web';
//   const session = await Kiln.load('/models/minilm/', { onProgress: (p) => console.log(p) });
//   const { last_hidden_state } = await session.run({ input_ids, attention_mask });
//
// Loading order: WebGPU present -> adapter -> manifest -> the adapter's features and limits
// checked against the manifest (before any weights are downloaded) -> files fetched or taken
// from the Cache API, each verified against its sha256 -> device, pipelines and weights created
// by the Rust runtime (compiled to wasm32), which compares the digests with the manifest again.

import init, { WebRuntime } from './wasm/kiln_web.js';
import { KilnError, fetchManifest, fetchFiles, sha256Hex, DEFAULT_CACHE_NAME } from './loader.js';
import { encodeInputs, decodeOutputs, TYPED_ARRAYS } from './tensors.js';

export { KilnError, sha256Hex, DEFAULT_CACHE_NAME, TYPED_ARRAYS };

let wasmInit = null;
function initWasm() {
  wasmInit ??= init({ module_or_path: new URL('./wasm/kiln_web_bg.wasm', import.meta.url) });
  return wasmInit;
}

function runtimeError(code, e) {
  if (e instanceof KilnError) return e;
  return new KilnError(code, e?.message ?? String(e));
}

/** wgpu's adapter name is empty in browsers; GPUAdapterInfo says more. */
async function describeAdapter(fromWgpu) {
  try {
    const info = (await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' }))?.info;
    const parts = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean);
    if (parts.length) return `${parts.join(' ')} (WebGPU)`;
  } catch {
    // fall through
  }
  return fromWgpu;
}

/** A loaded bundle on the WebGPU device. Runs are queued, never overlapping. */
export class Session {
  #inner;
  #queue = Promise.resolve();

  constructor(inner, info) {
    this.#inner = inner;
    const sig = JSON.parse(inner.signature());
    this.model = sig.model;
    this.inputs = sig.inputs;
    this.outputs = sig.outputs;
    this.programs = sig.programs;
    this.adapter = info.adapter;
    this.timings = info.timings;
    this.cachedFiles = info.cachedFiles;
  }

  #enqueue(job) {
    const p = this.#queue.then(job);
    this.#queue = p.catch(() => {});
    return p;
  }

  /** Runs a program (default 'run'); resolves to {outputName: {data, shape, dtype}}. */
  run(inputs, options = {}) {
    const program = options.program ?? 'run';
    return this.#enqueue(async () => {
      const records = encodeInputs(this.inputs, inputs);
      try {
        return decodeOutputs(await this.#inner.run(program, records));
      } catch (e) {
        throw runtimeError('runtime', e);
      }
    });
  }

  /** Times `iters` GPU executions (no upload/readback inside); resolves to {median, min, mean} ms. */
  bench(inputs, options = {}) {
    const program = options.program ?? 'run';
    return this.#enqueue(async () => {
      const records = encodeInputs(this.inputs, inputs);
      try {
        return await this.#inner.bench(program, records, options.iters ?? 20);
      } catch (e) {
        throw runtimeError('runtime', e);
      }
    });
  }

  /** Releases the device and its buffers. */
  dispose() {
    return this.#enqueue(async () => this.#inner.free());
  }
}

export const Kiln = {
  /**
   * Loads the bundle at `bundleUrl` (a directory URL holding manifest.json).
   * options: onProgress(event), cache (default true), cacheName.
   */
  async load(bundleUrl, options = {}) {
    const onProgress = options.onProgress ?? (() => {});
    const t0 = performance.now();
    if (!globalThis.navigator?.gpu) {
      throw new KilnError(
        'no-webgpu',
        'WebGPU is not available here (navigator.gpu is undefined). Use a browser with WebGPU ' +
          '(Chrome/Edge 113+, Safari 26+, Firefox 141+ on Windows) on a page served over https or from localhost.',
      );
    }
    onProgress({ phase: 'init' });
    await initWasm();
    let runtime;
    try {
      runtime = await WebRuntime.request();
    } catch (e) {
      throw runtimeError('no-adapter', e);
    }
    const adapter = await describeAdapter(runtime.adapterInfo());

    onProgress({ phase: 'manifest' });
    const manifest = await fetchManifest(bundleUrl, options);
    try {
      runtime.check(manifest.bytes);
    } catch (e) {
      runtime.free();
      throw new KilnError('unsupported', `this device cannot run the bundle: ${e.message}`);
    }
    const t1 = performance.now();
    const files = await fetchFiles(manifest, { ...options, onProgress });
    const t2 = performance.now();

    onProgress({ phase: 'compile' });
    let inner;
    try {
      inner = await runtime.createSession(manifest.bytes, files.names, files.files, files.digests);
    } catch (e) {
      throw runtimeError('runtime', e);
    } finally {
      runtime.free(); // the session keeps its own handle on the adapter
    }
    const t3 = performance.now();
    const timings = { setupMs: t1 - t0, downloadMs: t2 - t1, createMs: t3 - t2, totalMs: t3 - t0 };
    onProgress({ phase: 'ready', timings });
    return new Session(inner, { adapter, timings, cachedFiles: files.cachedFiles });
  },

  /** Deletes every cached bundle file (the cache named DEFAULT_CACHE_NAME or `cacheName`). */
  async clearCache(cacheName = DEFAULT_CACHE_NAME) {
    if (typeof caches !== 'undefined') await caches.delete(cacheName);
  },
};

export default Kiln;
