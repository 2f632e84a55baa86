// Runs one hashing job in its own Web Worker; aborting terminates the worker.
import type { HashMessage, HashRequest } from './hash.worker';

function runJob(req: HashRequest, onProgress?: (done: number) => void, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException('aborted', 'AbortError'));
      return;
    }
    const worker = new Worker(new URL('./hash.worker.ts', import.meta.url), { type: 'module' });
    const finish = () => {
      worker.terminate();
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      finish();
      reject(new DOMException('aborted', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort);
    worker.onmessage = (e: MessageEvent<HashMessage>) => {
      const m = e.data;
      if (m.type === 'progress') onProgress?.(m.done);
      else if (m.type === 'result') {
        finish();
        resolve(m.hex);
      } else {
        finish();
        reject(new Error(m.message));
      }
    };
    worker.onerror = (e) => {
      finish();
      reject(new Error(e.message || 'the hashing worker failed'));
    };
    worker.postMessage(req);
  });
}

export function sha256File(file: Blob, onProgress?: (done: number) => void, signal?: AbortSignal): Promise<string> {
  return runJob({ kind: 'sha256', file }, onProgress, signal);
}

export function possessionProof(file: Blob, nonce: string, ranges: [number, number][], signal?: AbortSignal): Promise<string> {
  return runJob({ kind: 'proof', file, nonce, ranges }, undefined, signal);
}
