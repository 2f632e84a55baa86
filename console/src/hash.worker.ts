// Hashing off the main thread: SHA-256 of a whole File read in slices (incremental, so memory
// stays at one slice), and the instant-upload proof HMAC-SHA256(nonce, ranges of the file).
import { createHMAC, createSHA256 } from 'hash-wasm';

export type HashRequest =
  | { kind: 'sha256'; file: Blob }
  | { kind: 'proof'; file: Blob; nonce: string; ranges: [number, number][] };

export type HashMessage =
  | { type: 'progress'; done: number }
  | { type: 'result'; hex: string }
  | { type: 'error'; message: string };

const SLICE = 4 * 1024 * 1024;

function post(m: HashMessage): void {
  (self as unknown as { postMessage(m: HashMessage): void }).postMessage(m);
}

function hexToBytes(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) throw new Error('nonce is not hex');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

async function sha256(file: Blob): Promise<string> {
  const h = await createSHA256();
  h.init();
  let last = 0;
  for (let off = 0; off < file.size; off += SLICE) {
    const chunk = new Uint8Array(await file.slice(off, Math.min(file.size, off + SLICE)).arrayBuffer());
    h.update(chunk);
    const now = Date.now();
    if (now - last > 100) {
      last = now;
      post({ type: 'progress', done: Math.min(file.size, off + chunk.length) });
    }
  }
  post({ type: 'progress', done: file.size });
  return h.digest('hex');
}

async function proof(file: Blob, nonce: string, ranges: [number, number][]): Promise<string> {
  const mac = await createHMAC(createSHA256(), hexToBytes(nonce));
  mac.init();
  for (const [offset, length] of ranges) {
    if (offset < 0 || length < 0 || offset + length > file.size) throw new Error('range outside the file');
    mac.update(new Uint8Array(await file.slice(offset, offset + length).arrayBuffer()));
  }
  return mac.digest('hex');
}

self.onmessage = async (e: MessageEvent<HashRequest>) => {
  const req = e.data;
  try {
    const hex = req.kind === 'sha256' ? await sha256(req.file) : await proof(req.file, req.nonce, req.ranges);
    post({ type: 'result', hex });
  } catch (err) {
    post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
};
