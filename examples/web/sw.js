// Service worker of the demo: keeps the page, its scripts and the Kiln package (JS + wasm) in a
// cache so a reload works offline. Network first, cache as fallback. Bundle files (manifest,
// WGSL, weight shards) are left alone: the Kiln loader caches them itself, after verifying them.
const SHELL = 'kiln-demo-shell-v1';
const PRECACHE = [
  './',
  './index.html',
  './demo.js',
  './tokenizer.js',
  '../../web/dist/kiln.js',
  '../../web/dist/loader.js',
  '../../web/dist/tensors.js',
  '../../web/dist/wasm/kiln_web.js',
  '../../web/dist/wasm/kiln_web_bg.wasm',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(SHELL)
      .then((c) => c.addAll(PRECACHE))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

const isBundleFile = (path) => /\.(safetensors|wgsl)$/.test(path) || path.endsWith('/manifest.json');

self.addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== self.location.origin || isBundleFile(url.pathname)) return;
  event.respondWith(
    fetch(req)
      .then((resp) => {
        if (resp.ok) {
          const copy = resp.clone();
          event.waitUntil(caches.open(SHELL).then((c) => c.put(req, copy)));
        }
        return resp;
      })
      .catch(async () => {
        const hit = await caches.match(req, { ignoreSearch: true });
        if (hit) return hit;
        throw new Error(`offline and ${url.pathname} is not cached`);
      }),
  );
});
