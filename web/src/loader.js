// Fetching a bundle's files: progress events, sha256 verification, and the Cache API.
//
// The manifest is fetched network-first (falling back to the cache when offline); every other
// file is taken from the cache when present and fetched otherwise. Every file's sha256 is
// computed with SubtleCrypto and compared with the manifest before it is used or cached, whether
// it came from the network or from the cache: a tampered file is refused with a KilnError whose
// code is 'integrity', and a corrupted cache entry is dropped and fetched again. The manifest is
// cached only after all its files are verified and cached, so the cache never holds a manifest
// whose files are missing.

/** An error with a machine-readable `code` and a message that says what and where. */
export class KilnError extends Error {
  /**
   * @param {string} code one of 'no-webgpu', 'no-adapter', 'unsupported', 'network', 'integrity',
   *   'manifest', 'input', 'runtime'
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'KilnError';
    this.code = code;
  }
}

/** Default Cache API cache for bundle files. */
export const DEFAULT_CACHE_NAME = 'kiln-bundles-v1';

/** Hex sha256 of bytes (SubtleCrypto). */
export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  let s = '';
  for (const b of digest) s += b.toString(16).padStart(2, '0');
  return s;
}

async function openCache(options) {
  if (options.cache === false || typeof caches === 'undefined') return null;
  try {
    return await caches.open(options.cacheName ?? DEFAULT_CACHE_NAME);
  } catch {
    return null; // e.g. an insecure context: work without a cache
  }
}

/** Starts a fetch; resolves once headers arrive. */
async function startFetch(url) {
  let resp;
  try {
    resp = await fetch(url, { cache: 'no-cache' });
  } catch (e) {
    throw new KilnError('network', `cannot fetch ${url}: ${e.message}`);
  }
  if (!resp.ok) throw new KilnError('network', `cannot fetch ${url}: HTTP ${resp.status} ${resp.statusText}`);
  return resp;
}

/** Reads a response body, calling onBytes(n) for every chunk. */
async function readBody(resp, url, onBytes) {
  const size = Number(resp.headers.get('content-length')) || 0;
  if (!resp.body) {
    const buf = new Uint8Array(await resp.arrayBuffer());
    onBytes(buf.byteLength);
    return buf;
  }
  const reader = resp.body.getReader();
  const chunks = [];
  let got = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.byteLength;
      onBytes(value.byteLength);
    }
  } catch (e) {
    throw new KilnError('network', `download of ${url} failed after ${got} bytes: ${e.message}`);
  }
  if (size && got !== size) throw new KilnError('network', `download of ${url} ended after ${got} of ${size} bytes`);
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(got);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * Fetches manifest.json (network first, cache as fallback) and parses it.
 * @returns {Promise<{url: URL, bytes: Uint8Array, manifest: any, fromCache: boolean}>}
 */
export async function fetchManifest(bundleUrl, options = {}) {
  const base = new URL(bundleUrl.endsWith('/') ? bundleUrl : bundleUrl + '/', globalThis.location?.href);
  const url = new URL('manifest.json', base);
  const cache = await openCache(options);
  let bytes;
  let fromCache = false;
  try {
    bytes = await readBody(await startFetch(url), url, () => {});
  } catch (e) {
    const hit = cache && (await cache.match(url));
    if (!hit) throw new KilnError('network', `${e.message}; and no copy of it is cached, so the bundle cannot load offline`);
    bytes = new Uint8Array(await hit.arrayBuffer());
    fromCache = true;
  }
  let manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new KilnError('manifest', `${url} is not valid JSON: ${e.message}`);
  }
  if (!manifest || typeof manifest.files !== 'object' || manifest.files === null) {
    throw new KilnError('manifest', `${url} has no 'files' table; is it a Kiln bundle?`);
  }
  for (const name of Object.keys(manifest.files)) {
    if (!name || name.startsWith('/') || name.split('/').some((c) => c === '..' || c === '.' || c === '')) {
      throw new KilnError('manifest', `${url}: file name '${name}' must be a relative path inside the bundle`);
    }
  }
  return { url, base, bytes, manifest, fromCache };
}

/**
 * Fetches (or takes from the cache) and verifies every file the manifest lists.
 * onProgress receives {phase: 'download', loaded, total, file} while bytes arrive and
 * {phase: 'verify', file} per file.
 * @returns {Promise<{names: string[], files: Uint8Array[], digests: string[], cachedFiles: number}>}
 */
export async function fetchFiles(fetched, options = {}) {
  const onProgress = options.onProgress ?? (() => {});
  const cache = await openCache(options);
  const entries = Object.entries(fetched.manifest.files);
  let loaded = 0;
  let total = 0;
  let cachedFiles = 0;

  // Cached copies first; a cached file that fails verification is dropped and fetched again.
  const sources = await Promise.all(
    entries.map(async ([name, expected]) => {
      const url = new URL(name, fetched.base);
      const hit = cache && (await cache.match(url));
      if (hit) {
        const bytes = new Uint8Array(await hit.arrayBuffer());
        const digest = await sha256Hex(bytes);
        if (digest === expected.toLowerCase()) {
          total += bytes.byteLength;
          loaded += bytes.byteLength;
          cachedFiles += 1;
          return { name, url, expected, bytes, digest };
        }
        await cache.delete(url);
      }
      const resp = await startFetch(url);
      total += Number(resp.headers.get('content-length')) || 0;
      return { name, url, expected, resp };
    }),
  );
  onProgress({ phase: 'download', loaded, total, file: null });

  const verified = await Promise.all(
    sources.map(async (s) => {
      if (s.bytes) return s;
      const bytes = await readBody(s.resp, s.url, (n) => {
        loaded += n;
        onProgress({ phase: 'download', loaded, total, file: s.name });
      });
      onProgress({ phase: 'verify', loaded, total, file: s.name });
      const actual = await sha256Hex(bytes);
      if (actual !== s.expected.toLowerCase()) {
        throw new KilnError(
          'integrity',
          `bundle file '${s.name}' (${s.url}) failed verification: its sha256 is ${actual}, ` +
            `but the manifest says ${s.expected}; the file was modified or corrupted, so it is refused`,
        );
      }
      if (cache) await cache.put(s.url, new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } }));
      return { ...s, bytes, digest: actual };
    }),
  );
  if (cache && !fetched.fromCache) {
    await cache.put(fetched.url, new Response(fetched.bytes, { headers: { 'content-type': 'application/json' } }));
  }
  // The digests of the bytes actually used; the runtime compares them with the manifest again.
  return {
    names: verified.map((s) => s.name),
    files: verified.map((s) => s.bytes),
    digests: verified.map((s) => s.digest),
    cachedFiles,
  };
}
