// Types of @kiln/web (the implementation is kiln.js, loader.js and tensors.js).

/** Kiln dtype names, as in a bundle's manifest. */
export type DType = 'f32' | 'f16' | 'i32' | 'i64' | 'u32' | 'i8' | 'u8' | 'bool';

/** The typed array a dtype maps to (f16 is raw half bits; bool is 0/1 bytes). */
export type TypedArray =
  | Float32Array
  | Uint16Array
  | Int32Array
  | BigInt64Array
  | Uint32Array
  | Int8Array
  | Uint8Array;

/** An input: a bare array (shape taken from the manifest, at most one symbolic dim) or data with a shape. */
export type InputValue = TypedArray | number[] | { data: TypedArray | number[]; shape: number[] };

/** An output tensor. */
export interface Tensor {
  data: TypedArray;
  shape: number[];
  dtype: DType;
}

/** An input or output of the bundle; shape entries are size expressions such as "batch_size" or "384". */
export interface IoSpec {
  name: string;
  dtype: DType;
  shape: string[];
}

/** Progress while loading. `total` is the byte count known so far (sum of Content-Length headers and cached sizes). */
export type ProgressEvent =
  | { phase: 'init' }
  | { phase: 'manifest' }
  | { phase: 'download'; loaded: number; total: number; file: string | null }
  | { phase: 'verify'; loaded: number; total: number; file: string }
  | { phase: 'compile' }
  | { phase: 'ready'; timings: LoadTimings };

/** Milliseconds spent in each part of Kiln.load. */
export interface LoadTimings {
  /** wasm init, adapter request, manifest fetch and requirement check. */
  setupMs: number;
  /** fetching (or reading from the cache) and verifying every file. */
  downloadMs: number;
  /** device, pipelines and weight upload. */
  createMs: number;
  totalMs: number;
}

export interface LoadOptions {
  onProgress?: (event: ProgressEvent) => void;
  /** Use the Cache API (default true). */
  cache?: boolean;
  /** Cache API cache name (default DEFAULT_CACHE_NAME). */
  cacheName?: string;
}

export interface RunOptions {
  /** Program of the bundle to run (default 'run'). */
  program?: string;
}

export interface BenchOptions extends RunOptions {
  /** Timed iterations (default 20). */
  iters?: number;
}

/** Error codes of KilnError. */
export type KilnErrorCode =
  | 'no-webgpu'
  | 'no-adapter'
  | 'unsupported'
  | 'network'
  | 'integrity'
  | 'manifest'
  | 'input'
  | 'runtime';

export class KilnError extends Error {
  readonly code: KilnErrorCode;
  constructor(code: KilnErrorCode, message: string);
}

export class Session {
  readonly model: string;
  readonly inputs: IoSpec[];
  readonly outputs: IoSpec[];
  readonly programs: string[];
  /** The WebGPU adapter, for display. */
  readonly adapter: string;
  readonly timings: LoadTimings;
  /** How many files came from the Cache API. */
  readonly cachedFiles: number;
  run(inputs: Record<string, InputValue>, options?: RunOptions): Promise<Record<string, Tensor>>;
  bench(inputs: Record<string, InputValue>, options?: BenchOptions): Promise<{ median: number; min: number; mean: number }>;
  dispose(): Promise<void>;
}

export const Kiln: {
  load(bundleUrl: string, options?: LoadOptions): Promise<Session>;
  clearCache(cacheName?: string): Promise<void>;
};
export default Kiln;

export const DEFAULT_CACHE_NAME: string;
export const TYPED_ARRAYS: Record<DType, { new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): TypedArray }>;
export function sha256Hex(bytes: BufferSource): Promise<string>;
