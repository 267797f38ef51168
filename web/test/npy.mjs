// Minimal .npy reading and writing (little-endian f4, i8 and i4 arrays, C order) so the tests
// can exchange tensors with `kiln run`.
import fs from 'node:fs';

const DESCR = { '<f4': Float32Array, '<i8': BigInt64Array, '<i4': Int32Array };

export function writeNpy(file, data, shape) {
  const descr = Object.keys(DESCR).find((k) => data instanceof DESCR[k]);
  if (!descr) throw new Error(`writeNpy: unsupported array type ${data.constructor.name}`);
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(pre);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

export function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file} is not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order is not supported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const Ctor = DESCR[descr];
  if (!Ctor) throw new Error(`${file}: unsupported dtype ${descr}`);
  const bytes = buf.subarray(start + hlen);
  const copy = new Uint8Array(bytes).buffer;
  return { data: new Ctor(copy, 0, bytes.byteLength / Ctor.BYTES_PER_ELEMENT), shape };
}
