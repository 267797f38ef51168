// The demo: load the tokenizer vocab and the Kiln bundle (progress bar), embed the sentences
// with one batched run, rank them by cosine similarity to the first, and show the timings.
// Query parameter `model`: a directory holding `bundle/` (from `kiln compile`) and `vocab.txt`.
import { Kiln } from '../../web/dist/kiln.js';

window.Kiln = Kiln; // for the browser tests and the console
import { WordPieceTokenizer } from './tokenizer.js';

const $ = (id) => document.getElementById(id);
const model = new URLSearchParams(location.search).get('model') ?? './model/';
const base = model.endsWith('/') ? model : model + '/';
const fmt = (ms) => `${ms.toFixed(1)} ms`;

function status(text, isError = false) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}

function onProgress(p) {
  if (p.phase === 'download' || p.phase === 'verify') {
    const mib = (n) => (n / 2 ** 20).toFixed(1);
    $('progress').value = p.total ? p.loaded / p.total : 0;
    status(`${p.phase === 'verify' ? 'Verifying' : 'Downloading'} model: ${mib(p.loaded)} / ${mib(p.total)} MiB`);
  } else if (p.phase === 'compile') {
    $('progress').value = 1;
    status('Creating GPU pipelines and uploading weights…');
  } else if (p.phase === 'manifest') {
    status('Checking the GPU against the bundle…');
  }
}

function embeddingOutput(session) {
  const o = session.outputs.find((o) => o.dtype === 'f32' && o.shape.length === 2);
  if (!o) throw new Error('the bundle has no [batch, dim] f32 output to use as sentence embedding');
  return o.name;
}

async function compare(session, tokenizer, out) {
  const sentences = $('sentences').value.split('\n').map((s) => s.trim()).filter(Boolean);
  if (sentences.length < 2) {
    status('Enter at least two sentences.', true);
    return;
  }
  const t0 = performance.now();
  const batch = tokenizer.encodeBatch(sentences);
  const t1 = performance.now();
  const outputs = await session.run({
    input_ids: { data: batch.inputIds, shape: [batch.batch, batch.seq] },
    attention_mask: { data: batch.attentionMask, shape: [batch.batch, batch.seq] },
  });
  const t2 = performance.now();
  const { data, shape } = outputs[out];
  const dim = shape[1];
  const vec = (i) => data.subarray(i * dim, (i + 1) * dim);
  const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  const q = vec(0);
  const scores = sentences.slice(1).map((s, k) => {
    const v = vec(k + 1);
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += q[j] * v[j];
    return { sentence: s, score: dot / (norm(q) * norm(v)) };
  });
  scores.sort((a, b) => b.score - a.score);

  const table = $('results');
  table.replaceChildren();
  const row = (cells) => {
    const tr = document.createElement('tr');
    for (const [cls, content] of cells) {
      const td = document.createElement('td');
      td.className = cls;
      if (content instanceof Node) td.append(content);
      else td.textContent = content;
      tr.append(td);
    }
    table.append(tr);
  };
  row([['query', sentences[0]], ['score', ''], ['bar', '']]);
  for (const { sentence, score } of scores) {
    const bar = document.createElement('span');
    bar.style.width = `${Math.max(0, score) * 100}%`;
    row([['', sentence], ['score', score.toFixed(3)], ['bar', bar]]);
  }
  const l = session.timings;
  $('timings').textContent =
    `Load: ${fmt(l.totalMs)} (files ${fmt(l.downloadMs)}, ${session.cachedFiles ? 'from the cache' : 'downloaded'}; ` +
    `GPU setup ${fmt(l.createMs)}) · tokenize ${fmt(t1 - t0)} · embed ${batch.batch}×${batch.seq} tokens ${fmt(t2 - t1)} · ` +
    `adapter: ${session.adapter}`;
  status('Done.');
  window.demoResult = { query: sentences[0], scores, embedMs: t2 - t1, cachedFiles: session.cachedFiles };
  document.body.dataset.state = 'done';
}

/** Network first; the response is kept in the Cache API for offline reloads. */
async function fetchTextCached(url) {
  const cache = await caches.open('kiln-demo-data-v1');
  try {
    const resp = await fetch(url, { cache: 'no-cache' });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    await cache.put(url, resp.clone());
    return await resp.text();
  } catch (e) {
    const hit = await cache.match(url);
    if (hit) return hit.text();
    throw new Error(`cannot fetch ${url} (${e.message}) and it is not cached`);
  }
}

async function main() {
  if ('serviceWorker' in navigator) {
    // Caches the page and the package so a reload works offline (the bundle is cached by Kiln).
    navigator.serviceWorker.register('./sw.js').catch((e) => console.warn('service worker:', e));
  }
  status('Loading the tokenizer…');
  const tokenizer = new WordPieceTokenizer(await fetchTextCached(base + 'vocab.txt'));
  const session = await Kiln.load(base + 'bundle/', { onProgress });
  window.demoSession = session; // for the browser tests and the console
  const out = embeddingOutput(session);
  $('compare').disabled = false;
  $('compare').onclick = () => compare(session, tokenizer, out).catch(fail);
  await compare(session, tokenizer, out);
}

function fail(e) {
  status(`${e.code ? `[${e.code}] ` : ''}${e.message}`, true);
  document.body.dataset.state = 'error';
  console.error(e);
}

main().catch(fail);
