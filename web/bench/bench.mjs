// Benchmark: paraphrase-MiniLM-L3-v2 at batch 1, sequence 128 in headless Chromium (WebGPU on
// SwiftShader), Kiln vs onnxruntime-web's WebGPU and wasm execution providers on the same ONNX
// file, same inputs, same page. Each engine: load, warm-up runs, then the median of 20 timed
// runs of a full inference as an application sees it (inputs from JS typed arrays, every
// output read back into JS). With --gpu-only, Kiln's GPU-only time (Session.bench: record,
// submit, wait; no upload or readback) is reported too.
//
// Needs what scripts/web_test.sh prepares (web/dist, .cache/web/minilm/bundle) and
// `npm ci` in web/ and web/bench/. Usage: node web/bench/bench.mjs [--runs 20] [--warmup 3] [--gpu-only]
import { chromium } from 'playwright-core';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../test/server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg('runs', 20);
const WARMUP = arg('warmup', 3);
const GPU_ONLY = process.argv.includes('--gpu-only');
const SEQ = 128;
const ARGS = [
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

async function main() {
  // Cross-origin isolation lets onnxruntime-web's wasm EP use threads (SharedArrayBuffer).
  const server = await startServer(root, 0, { isolated: true });
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ARGS });
  const page = await browser.newPage();
  page.on('console', (m) => ['error', 'info'].includes(m.type()) && console.log(`  [browser] ${m.text()}`));
  await page.goto(`${server.url}/web/bench/bench.html`);
  await page.waitForFunction(() => window.benchReady === true);
  const r = await page.evaluate(
    async ({ runs, warmup, seq, gpuOnly }) => {
      const { Kiln } = window.kiln;
      const ort = window.ort;
      ort.env.wasm.wasmPaths = '/web/bench/node_modules/onnxruntime-web/dist/';
      ort.env.wasm.numThreads = navigator.hardwareConcurrency;
      // Deterministic token ids: [CLS] w... [SEP], all attended.
      const ids = new BigInt64Array(seq);
      let s = 12345;
      for (let i = 0; i < seq; i++) {
        s = (s * 1103515245 + 12345) % 2147483648;
        ids[i] = BigInt(1000 + (s % 28000));
      }
      ids[0] = 101n;
      ids[seq - 1] = 102n;
      const mask = new BigInt64Array(seq).fill(1n);
      const median = (t) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)];
      const time = async (what, fn) => {
        for (let i = 0; i < warmup; i++) {
          const t0 = performance.now();
          await fn();
          console.info(`${what}: warm-up ${i + 1}: ${(performance.now() - t0).toFixed(1)} ms`);
        }
        const t = [];
        for (let i = 0; i < runs; i++) {
          const t0 = performance.now();
          await fn();
          t.push(performance.now() - t0);
        }
        console.info(`${what}: median ${median(t).toFixed(1)} ms of ${runs}`);
        return { median: median(t), min: Math.min(...t), runs: t.length };
      };
      const out = { seq, runs, warmup, threads: ort.env.wasm.numThreads, crossOriginIsolated };

      // Kiln
      let t0 = performance.now();
      const session = await Kiln.load('/.cache/web/minilm/bundle/', { cacheName: 'kiln-bench' });
      out.kilnLoadMs = performance.now() - t0;
      console.info(`kiln: loaded in ${out.kilnLoadMs.toFixed(0)} ms`);
      out.adapter = session.adapter;
      const feed = { input_ids: { data: ids, shape: [1, seq] }, attention_mask: { data: mask, shape: [1, seq] } };
      let kilnOut;
      out.kiln = await time('kiln', async () => {
        kilnOut = await session.run(feed);
      });
      if (gpuOnly) out.kilnGpuOnly = await session.bench(feed, { iters: runs });
      const emb = session.outputs.find((o) => o.dtype === 'f32' && o.shape.length === 2).name;

      // onnxruntime-web, WebGPU and wasm EPs
      const model = await (await fetch('/.cache/models/paraphrase-MiniLM-L3-v2.onnx')).arrayBuffer();
      const ortFeed = {
        input_ids: new ort.Tensor('int64', ids, [1, seq]),
        attention_mask: new ort.Tensor('int64', mask, [1, seq]),
      };
      for (const ep of ['webgpu', 'wasm']) {
        try {
          t0 = performance.now();
          const s = await ort.InferenceSession.create(model, { executionProviders: [ep] });
          const load = performance.now() - t0;
          let o;
          const t = await time(`ort ${ep}`, async () => {
            o = await s.run(ortFeed);
          });
          // Same embedding from both engines?
          const a = kilnOut[emb].data;
          const b = o[emb].data;
          let diff = 0;
          for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
          out[ep] = { ...t, loadMs: load, maxAbsDiffVsKiln: diff };
          await s.release();
        } catch (e) {
          out[ep] = { error: String(e.message ?? e) };
        }
      }
      return out;
    },
    { runs: RUNS, warmup: WARMUP, seq: SEQ, gpuOnly: GPU_ONLY },
  );
  await browser.close();
  await server.stop();
  console.log(JSON.stringify(r, null, 2));
  const ms = (x) => (x?.median !== undefined ? `${x.median.toFixed(1)} ms` : x?.error ?? 'n/a');
  console.log(`\nMiniLM-L3 batch 1 seq ${SEQ}, median of ${RUNS} after ${WARMUP} warm-up runs (${r.adapter}):`);
  const gpu = r.kilnGpuOnly ? `; GPU only ${r.kilnGpuOnly.median.toFixed(1)} ms` : '';
  console.log(`  Kiln (run: upload + GPU + readback) ${ms(r.kiln)}${gpu}`);
  console.log(`  onnxruntime-web WebGPU ${ms(r.webgpu)}; wasm (${r.threads} threads) ${ms(r.wasm)}`);
  if (r.webgpu?.median) console.log(`  Kiln is ${(r.webgpu.median / r.kiln.median).toFixed(2)}x ORT WebGPU`);
  if (r.wasm?.median) console.log(`  Kiln is ${(r.wasm.median / r.kiln.median).toFixed(2)}x ORT wasm`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
