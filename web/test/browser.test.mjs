// Headless browser tests of the web package and the demo, in Debian's Chromium with WebGPU on
// SwiftShader, driven by playwright-core. scripts/web_test.sh prepares what they need:
// web/dist (scripts/build_web.sh), target/release/kiln, and .cache/web/minilm/{bundle,vocab.txt}
// (paraphrase-MiniLM-L3-v2 compiled by `kiln compile`).
//
// 1. The demo page shows the ranking (paraphrases above the unrelated sentences); a screenshot
//    is taken and checked to show the result bars.
// 2. The browser's outputs (the demo's session) equal the native runtime's (`kiln run`, same
//    bundle and inputs): f32 within 1e-4 (|a-b| <= 1e-4 * max(1, |b|)), integers exactly.
// 3. A bundle whose weight shard has one flipped bit is refused with an 'integrity' error
//    naming the file, and the tampered file is not cached.
// 4. A manifest whose buffer exceeds the adapter's binding limit is refused before any file is
//    downloaded, naming the limit, the buffer and its size; without WebGPU the demo says so.
// 5. With the server stopped, a reload of the demo still works (page from the service worker,
//    bundle from the Cache API, every file re-verified).
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { readNpy, writeNpy } from './npy.mjs';
import { WordPieceTokenizer } from '../../examples/web/tokenizer.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const modelDir = '.cache/web/minilm';
const kilnBin = process.env.KILN_BIN ?? path.join(root, 'target/release/kiln');
const outDir = path.join(root, process.env.KILN_WEB_TEST_OUT ?? '.cache/web/test-out');
export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
const SENTENCES = ['A man is playing a guitar.', 'Someone is playing an instrument.', 'The stock market fell sharply today.'];

const results = [];
async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, 'ok', Date.now() - t0]);
    console.log(`ok   ${name} (${((Date.now() - t0) / 1e3).toFixed(1)} s)`);
  } catch (e) {
    results.push([name, 'FAILED', Date.now() - t0]);
    console.log(`FAIL ${name}\n${e.stack ?? e}`);
  }
}

function outputFileName(name) {
  return name.replace(/[^A-Za-z0-9._-]/g, '_') + '.npy';
}

/**
 * Runs the native runtime on the same inputs (the bundle at `bundleDir`, relative to the
 * repository root; MiniLM's by default); returns {name: {data, shape}}.
 */
function nativeOutputs(inputs, manifest, bundleDir = path.join(modelDir, 'bundle')) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-web-native-'));
  const args = ['run', path.join(root, bundleDir), '--out', path.join(tmp, 'out')];
  for (const [name, { data, shape }] of Object.entries(inputs)) {
    const f = path.join(tmp, `${name}.npy`);
    writeNpy(f, data, shape);
    args.push('--input', `${name}=${f}`);
  }
  execFileSync(kilnBin, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const out = {};
  for (const o of manifest.outputs) out[o.name] = readNpy(path.join(tmp, 'out', outputFileName(o.name)));
  fs.rmSync(tmp, { recursive: true, force: true });
  return out;
}

function tamperedCopy() {
  const src = path.join(root, modelDir, 'bundle');
  const dst = path.join(root, '.cache/web/minilm-tampered/bundle');
  fs.rmSync(path.dirname(dst), { recursive: true, force: true });
  fs.cpSync(src, dst, { recursive: true });
  const shard = fs.readdirSync(dst).find((f) => f.endsWith('.safetensors'));
  const file = path.join(dst, shard);
  const bytes = fs.readFileSync(file);
  bytes[Math.floor(bytes.length / 2)] ^= 0x01; // one bit, inside the weight data
  fs.writeFileSync(file, bytes);
  return { url: '/.cache/web/minilm-tampered/bundle/', shard };
}

/**
 * A copy of the bundle's manifest (only the manifest: nothing else may be fetched) whose largest
 * weight buffer claims 2 GiB, more than SwiftShader's 1 GiB maxStorageBufferBindingSize.
 */
function oversizedManifestCopy(manifest) {
  const m = structuredClone(manifest);
  const [index, buffer] = m.buffers
    .map((b, i) => [i, b])
    .filter(([, b]) => b.kind === 'weight')
    .sort((x, y) => y[1].size - x[1].size)[0];
  buffer.size = 2 ** 31;
  const dir = path.join(root, '.cache/web/minilm-oversized/bundle');
  fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
  return { url: '/.cache/web/minilm-oversized/bundle/', index, label: buffer.label };
}

/** Counts pixels of the result bars' green in a PNG, decoded by the browser itself. */
async function countBarPixels(page, png) {
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let green = 0;
    for (let i = 0; i < px.length; i += 4) {
      // #2f9e44, the bar colour
      if (Math.abs(px[i] - 0x2f) < 12 && Math.abs(px[i + 1] - 0x9e) < 12 && Math.abs(px[i + 2] - 0x44) < 12) green++;
    }
    return { green, width: c.width, height: c.height };
  }, png.toString('base64'));
}

async function main() {
  fs.mkdirSync(outDir, { recursive: true });
  const manifest = JSON.parse(fs.readFileSync(path.join(root, modelDir, 'bundle/manifest.json'), 'utf8'));
  const tokenizer = new WordPieceTokenizer(fs.readFileSync(path.join(root, modelDir, 'vocab.txt'), 'utf8'));
  const server = await startServer(root);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
  try {
    // One page, the demo: creating a session on SwiftShader is the slow part (pipelines are
    // compiled on the CPU), so every test reuses the demo's session where it can.
    const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
    const page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && console.log(`  [browser] ${m.text()}`));
    const demoUrl = `${server.url}/examples/web/index.html?model=/${modelDir}/`;
    const waitDone = async () => {
      await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 280_000 });
      const state = await page.evaluate(() => document.body.dataset.state);
      if (state !== 'done') throw new Error(`demo failed: ${await page.textContent('#status')}`);
      return page.evaluate(() => ({ ...window.demoResult, timings: window.demoSession.timings, adapter: window.demoSession.adapter }));
    };
    let demoLoaded = false;

    await test('the demo page ranks paraphrases first; its screenshot shows the result', async () => {
      await page.goto(demoUrl);
      const r = await waitDone();
      demoLoaded = true;
      const t = r.timings;
      console.log(`     adapter: ${r.adapter}; load ${t.totalMs.toFixed(0)} ms (files ${t.downloadMs.toFixed(0)} ms, session ${t.createMs.toFixed(0)} ms)`);
      const rank = r.scores.map((s) => s.sentence);
      console.log(`     scores: ${r.scores.map((s) => `${s.score.toFixed(3)} ${s.sentence}`).join(' | ')}; embed ${r.embedMs.toFixed(0)} ms`);
      const unrelated = ['The stock market fell sharply today.', 'A chef is cooking pasta in the kitchen.'];
      assert.ok(unrelated.includes(rank.at(-1)) && unrelated.includes(rank.at(-2)), `ranking: ${rank}`);
      assert.ok(r.scores[0].score > 0.5 && r.scores.at(-1).score < 0.3, 'paraphrase vs unrelated scores');
      const png = await page.screenshot({ path: path.join(outDir, 'demo.png'), fullPage: true });
      const px = await countBarPixels(page, png);
      const table = await page.locator('#results').boundingBox();
      console.log(`     screenshot ${px.width}x${px.height}: ${px.green} bar pixels; saved ${path.relative(root, outDir)}/demo.png`);
      // Four bars of 14 px height whose widths are the scores, in a 34% column of the table.
      const expected = r.scores.reduce((s, x) => s + Math.max(0, x.score), 0) * 0.34 * table.width * 14;
      assert.ok(px.green > 0.5 * expected, `expected about ${expected.toFixed(0)} bar pixels, found ${px.green}`);
    });

    await test('browser outputs equal the native runtime within 1e-4', async () => {
      assert.ok(demoLoaded, 'the demo did not load');
      const b = tokenizer.encodeBatch(SENTENCES);
      const inputs = {
        input_ids: { data: b.inputIds, shape: [b.batch, b.seq] },
        attention_mask: { data: b.attentionMask, shape: [b.batch, b.seq] },
      };
      const native = nativeOutputs(inputs, manifest);
      const web = await page.evaluate(async (inputs) => {
        const feed = {};
        for (const [k, v] of Object.entries(inputs)) feed[k] = { data: v.data.map(BigInt), shape: v.shape };
        const out = await window.demoSession.run(feed);
        const plain = {};
        for (const [k, v] of Object.entries(out)) plain[k] = { shape: v.shape, dtype: v.dtype, data: Array.from(v.data, Number) };
        return plain;
      }, Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { data: Array.from(v.data, Number), shape: v.shape }])));
      for (const o of manifest.outputs) {
        const w = web[o.name];
        const n = native[o.name];
        assert.ok(w, `output '${o.name}' missing in the browser`);
        assert.deepEqual(w.shape, n.shape, `shape of '${o.name}'`);
        const nv = Array.from(n.data, Number);
        let worst = 0;
        for (let i = 0; i < nv.length; i++) worst = Math.max(worst, Math.abs(w.data[i] - nv[i]) / Math.max(1, Math.abs(nv[i])));
        console.log(`     ${o.name} ${o.dtype}[${n.shape}]: max |browser - native| / max(1, |native|) = ${worst.toExponential(2)}`);
        if (o.dtype === 'f32') assert.ok(worst <= 1e-4, `output '${o.name}' differs by ${worst}`);
        else assert.equal(worst, 0, `integer output '${o.name}' differs`);
      }
    });

    await test('a split decode attention (slices combined by their last workgroup) equals the native runtime', async () => {
      // One session, several key counts (one key, a partial step, many slices): the slices'
      // arrival counters must be back at zero after every run.
      const dir = '.cache/web/attention/bundle';
      const m = JSON.parse(fs.readFileSync(path.join(root, dir, 'manifest.json'), 'utf8'));
      assert.ok(m.buffers.some((b) => b.kind === 'scratch'), 'the bundle has no scratch buffer: the slices are combined by a second dispatch');
      const runs = [1, 33, 300, 33].map((t) => {
        const vals = (n, seed) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 0.9);
        // The mask hides a run of keys (whole slices at 300), never key 0.
        const mask = Float32Array.from({ length: 3 * t }, (_, e) => (e % t >= 1 && e % t < t / 2 ? -Infinity : (e % 5) * 0.1));
        return {
          q: { data: vals(2 * 3 * 64, 1), shape: [2, 3, 64] },
          k: { data: vals(2 * 64 * t, 2), shape: [2, 64, t] },
          v: { data: vals(2 * t * 64, 3), shape: [2, t, 64] },
          mask: { data: mask, shape: [3, t] },
        };
      });
      const plain = (inputs) => Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, { data: Array.from(v.data), shape: v.shape }]));
      const web = await page.evaluate(async ({ url, runs }) => {
        const s = await window.Kiln.load(url, { cacheName: 'kiln-test-attention' });
        const out = [];
        for (const r of runs) {
          const feed = {};
          for (const [k, v] of Object.entries(r)) feed[k] = { data: Float32Array.from(v.data.map((x) => (x === null ? -Infinity : x))), shape: v.shape };
          const o = await s.run(feed);
          out.push({ shape: o.o.shape, data: Array.from(o.o.data) });
        }
        return out;
      }, { url: `/${dir}/`, runs: runs.map(plain) });
      runs.forEach((inputs, i) => {
        const native = nativeOutputs(inputs, m, dir).o;
        const w = web[i];
        assert.deepEqual(w.shape, native.shape, 'output shape');
        const nv = Array.from(native.data, Number);
        let worst = 0;
        for (let j = 0; j < nv.length; j++) worst = Math.max(worst, Math.abs(w.data[j] - nv[j]) / Math.max(1, Math.abs(nv[j])));
        console.log(`     ${inputs.k.shape[2]} keys: max |browser - native| / max(1, |native|) = ${worst.toExponential(2)}`);
        assert.ok(Number.isFinite(worst) && worst <= 1e-4, `${inputs.k.shape[2]} keys: differs by ${worst}`);
      });
    });

    await test('a tampered weight shard is refused with an integrity error', async () => {
      const t = tamperedCopy();
      const r = await page.evaluate(async (url) => {
        try {
          await window.Kiln.load(url, { cacheName: 'kiln-test-tampered' });
          return { loaded: true };
        } catch (e) {
          const cache = await caches.open('kiln-test-tampered');
          const cachedShards = (await cache.keys()).filter((k) => k.url.endsWith('.safetensors')).length;
          return { loaded: false, code: e.code, message: e.message, cachedShards };
        }
      }, t.url);
      assert.equal(r.loaded, false, 'the tampered bundle loaded');
      console.log(`     error: [${r.code}] ${r.message}`);
      assert.equal(r.code, 'integrity');
      assert.match(r.message, new RegExp(`'${t.shard}'.*sha256`));
      assert.equal(r.cachedShards, 0, 'the tampered shard was cached');
    });

    await test('a buffer larger than the adapter allows is named before any download', async () => {
      const o = oversizedManifestCopy(manifest);
      const r = await page.evaluate(async (url) => {
        try {
          await window.Kiln.load(url, { cacheName: 'kiln-test-oversized' });
          return { loaded: true };
        } catch (e) {
          return { loaded: false, code: e.code, message: e.message };
        }
      }, o.url);
      assert.equal(r.loaded, false, 'the oversized bundle loaded');
      console.log(`     error: [${r.code}] ${r.message}`);
      // The shards are absent from this copy: reaching them would be a 'network' error.
      assert.equal(r.code, 'unsupported');
      assert.match(r.message, /(maxStorageBufferBindingSize|maxBufferSize): the bundle needs/);
      assert.ok(r.message.includes(`buffer ${o.index} '${o.label}'`), 'the message names the buffer');
      assert.ok(r.message.includes(String(2 ** 31)), 'the message gives the size');
    });

    await test('with the server stopped, a reload works from the cache', async () => {
      assert.ok(demoLoaded, 'the demo did not load');
      await page.evaluate(() => navigator.serviceWorker.ready);
      await server.stop();
      await page.reload();
      const r = await waitDone();
      assert.ok(r.cachedFiles > 0, 'bundle files did not come from the cache');
      const files = Object.keys(manifest.files).length;
      assert.equal(r.cachedFiles, files, 'every bundle file comes from the cache');
      console.log(`     offline reload: ${r.cachedFiles} of ${files} bundle files from the cache; load ${r.timings.totalMs.toFixed(0)} ms, embed ${r.embedMs.toFixed(0)} ms`);
      await page.screenshot({ path: path.join(outDir, 'demo-offline.png'), fullPage: true });
    });
    await context.close();

    await test('without WebGPU, loading fails with a clear error', async () => {
      const plain = await chromium.launch({
        executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
        args: CHROMIUM_ARGS.filter((a) => !a.includes('webgpu')).concat(['--disable-features=WebGPU']),
      });
      try {
        const server2 = await startServer(root);
        const p = await plain.newPage();
        await p.goto(`${server2.url}/examples/web/index.html?model=/${modelDir}/`);
        await p.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 60_000 });
        const status = await p.textContent('#status');
        await server2.stop();
        console.log(`     status: ${status}`);
        assert.match(status, /^\[(no-webgpu|no-adapter)\] .*WebGPU/);
      } finally {
        await plain.close();
      }
    });
  } finally {
    await browser.close();
    await server.stop().catch(() => {});
  }
  const failed = results.filter((r) => r[1] !== 'ok');
  console.log(`browser tests: ${results.length - failed.length} passed, ${failed.length} failed`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
