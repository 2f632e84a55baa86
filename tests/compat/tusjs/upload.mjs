// One tus-js-client 4.3.1 upload, driven by tests/compat/test_tus_js.py.
//
// Input: one JSON object, as argv[2] or on stdin:
//   endpoint            creation URL (http://127.0.0.1:PORT/_chuan/tus/)
//   accessKey, secretKey  key pair for HTTP Basic
//   bearer              an upload token instead (Authorization: Bearer <token>)
//   file                path of the bytes to upload
//   input               "file" (fs.ReadStream, default), "buffer" (Buffer) or
//                       "stream" (a plain Readable of unknown length)
//   metadata, metadataForPartialUploads, chunkSize, uploadDataDuringCreation,
//   uploadLengthDeferred, parallelUploads, uploadUrl, removeFingerprintOnSuccess
//                       passed to tus.Upload as they are
//   retryDelays         an array, null (default here: fail at once) or "default"
//                       (tus-js-client's own [0, 1000, 3000, 5000])
//   urlStorage          path of a FileUrlStorage file (fingerprints -> upload URLs)
//   resume              with urlStorage: resume the first stored upload of this file
//   abort               {afterChunks: N} | {afterBytes: N, delayMs: D}, optional
//                       terminate: true (abort(true): DELETE the upload)
//   timeoutMs           give up after this long (default 120000)
//
// Output (stdout, one JSON line): {status: "success"|"aborted"|"error"|"timeout",
//   url, error, errorStatus, resumed, chunks, requests: [{method, url, headers,
//   status, response}]}; Authorization is never echoed.

import fs from 'node:fs';
import { Readable } from 'node:stream';
import * as tus from 'tus-js-client';

const cfg = JSON.parse(process.argv[2] ?? fs.readFileSync(0, 'utf8'));

const REQUEST_HEADERS = ['Upload-Offset', 'Upload-Length', 'Upload-Defer-Length', 'Upload-Metadata',
  'Upload-Concat', 'Upload-Checksum', 'Content-Type', 'Tus-Resumable', 'X-HTTP-Method-Override'];
const RESPONSE_HEADERS = ['Upload-Offset', 'Upload-Length', 'Upload-Defer-Length', 'Upload-Expires',
  'Upload-Concat', 'Location', 'Tus-Resumable'];

const requests = [];
const byRequest = new Map();
let chunks = 0;
let resumed = false;
let finished = false;
let aborting = false;
let upload = null;

function pick(get, names) {
  const out = {};
  for (const name of names) {
    const v = get(name);
    if (v !== undefined && v !== null) out[name] = String(v);
  }
  return out;
}

function finish(status, err) {
  if (finished) return;
  finished = true;
  const out = {
    status,
    url: upload ? upload.url : null,
    error: err ? String(err.stack ?? err) : null,
    errorStatus: err?.originalResponse ? err.originalResponse.getStatus() : null,
    resumed,
    chunks,
    requests,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
}

function makeInput() {
  const kind = cfg.input ?? 'file';
  if (kind === 'file') return fs.createReadStream(cfg.file);
  if (kind === 'buffer') return fs.readFileSync(cfg.file);
  if (kind === 'stream') {
    const data = fs.readFileSync(cfg.file);
    const piece = cfg.streamPiece ?? 64 * 1024;
    async function* pieces() {
      for (let i = 0; i < data.length; i += piece) {
        yield data.subarray(i, i + piece);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    return Readable.from(pieces(), { objectMode: false });
  }
  throw new Error(`unknown input ${kind}`);
}

function startAbort() {
  if (aborting) return;
  aborting = true;
  upload.abort(Boolean(cfg.abort?.terminate)).then(
    () => finish('aborted'),
    (err) => finish('error', err),
  );
}

const options = {
  endpoint: cfg.endpoint,
  headers: {
    Authorization: cfg.bearer
      ? `Bearer ${cfg.bearer}`
      : `Basic ${Buffer.from(`${cfg.accessKey}:${cfg.secretKey}`).toString('base64')}`,
  },
  metadata: cfg.metadata ?? {},
  onBeforeRequest(req) {
    const entry = {
      method: req.getMethod(),
      url: req.getURL(),
      headers: pick((n) => req.getHeader(n), REQUEST_HEADERS),
      status: null,
      response: null,
    };
    byRequest.set(req, entry);
    requests.push(entry);
  },
  onAfterResponse(req, res) {
    const entry = byRequest.get(req);
    if (!entry) return;
    entry.status = res.getStatus();
    entry.response = pick((n) => res.getHeader(n), RESPONSE_HEADERS);
  },
  onProgress(bytesSent) {
    const a = cfg.abort;
    if (a && a.afterBytes !== undefined && bytesSent >= a.afterBytes && !aborting) {
      // Abort from outside the progress callback, once more bytes are on their way.
      setTimeout(startAbort, a.delayMs ?? 0);
    }
  },
  onChunkComplete() {
    chunks += 1;
    const a = cfg.abort;
    if (a && a.afterChunks !== undefined && chunks >= a.afterChunks) startAbort();
  },
  onSuccess() {
    if (!aborting) finish('success');
  },
  onError(err) {
    finish('error', err);
  },
};
for (const name of ['metadataForPartialUploads', 'chunkSize', 'uploadDataDuringCreation', 'uploadLengthDeferred',
  'parallelUploads', 'uploadUrl', 'uploadSize', 'removeFingerprintOnSuccess']) {
  if (cfg[name] !== undefined) options[name] = cfg[name];
}
if (cfg.retryDelays !== 'default') options.retryDelays = cfg.retryDelays ?? null;
if (cfg.urlStorage) options.urlStorage = new tus.FileUrlStorage(cfg.urlStorage);

setTimeout(() => finish('timeout'), cfg.timeoutMs ?? 120000);

try {
  upload = new tus.Upload(makeInput(), options);
  if (cfg.resume) {
    const previous = await upload.findPreviousUploads();
    if (previous.length > 0) {
      upload.resumeFromPreviousUpload(previous[0]);
      resumed = true;
    }
  }
  upload.start();
} catch (err) {
  finish('error', err);
}
