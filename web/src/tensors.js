// Typed arrays <-> the runtime's {name, dtype, shape, bytes} records.
//
// Inputs may be given as a typed array or a plain array (converted to the input's dtype, so a
// tokenizer's Int32Array or number[] feeds an i64 input) or as {data, shape}. Outputs come back
// as {data, shape, dtype} with the typed array that matches the dtype.

import { KilnError } from './loader.js';

/** Typed array constructor per Kiln dtype name (f16 is raw half bits in a Uint16Array). */
export const TYPED_ARRAYS = {
  f32: Float32Array,
  f16: Uint16Array,
  i32: Int32Array,
  i64: BigInt64Array,
  u32: Uint32Array,
  i8: Int8Array,
  u8: Uint8Array,
  bool: Uint8Array,
};

function convert(name, dtype, data) {
  const Ctor = TYPED_ARRAYS[dtype];
  if (!Ctor) throw new KilnError('input', `input '${name}' has dtype '${dtype}', which the web runtime does not know`);
  if (data instanceof Ctor) return data;
  if (!ArrayBuffer.isView(data) && !Array.isArray(data)) {
    throw new KilnError('input', `input '${name}': expected a typed array, an array, or {data, shape}`);
  }
  const toBig = dtype === 'i64';
  try {
    return Ctor.from(data, (x) => {
      if (toBig) return BigInt(x);
      if (dtype === 'bool') return x ? 1 : 0;
      return Number(x);
    });
  } catch (e) {
    throw new KilnError('input', `input '${name}': cannot convert to ${dtype}: ${e.message}`);
  }
}

/** Builds the runtime's input records from the caller's object. */
export function encodeInputs(specs, inputs) {
  const expected = () => specs.map((s) => `${s.name}: ${s.dtype}[${s.shape.join(', ')}]`).join('; ');
  const out = [];
  for (const [name, value] of Object.entries(inputs ?? {})) {
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new KilnError('input', `'${name}' is not an input of this bundle; it expects ${expected()}`);
    const bare = ArrayBuffer.isView(value) || Array.isArray(value);
    const data = convert(name, spec.dtype, bare ? value : value?.data);
    const shape = bare ? null : Array.from(value.shape ?? [], Number);
    out.push({ name, dtype: spec.dtype, shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  }
  for (const s of specs) {
    if (!(s.name in (inputs ?? {}))) throw new KilnError('input', `input '${s.name}' is missing; the bundle expects ${expected()}`);
  }
  return out;
}

/** Turns the runtime's output records into {name: {data, shape, dtype}}. */
export function decodeOutputs(records) {
  const out = {};
  for (const r of records) {
    const Ctor = TYPED_ARRAYS[r.dtype];
    let bytes = r.bytes;
    if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT !== 0) bytes = bytes.slice();
    const data = new Ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
    out[r.name] = { data, shape: r.shape, dtype: r.dtype };
  }
  return out;
}
