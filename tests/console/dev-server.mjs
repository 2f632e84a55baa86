#!/usr/bin/env node
// Development server for the web console: serves console/dist at /_chuan/console/ and proxies
// every other request (S3, /_chuan/v1, /_chuan/tus) to a running `chuan serve`, keeping the
// Host header so that SigV4 signatures made for this origin verify upstream.
//
//   node tests/console/dev-server.mjs --upstream http://127.0.0.1:9000 [--port 5173] [--dist console/dist]
//        [--mock-tus] [--mock-account]
//
// --mock-tus and --mock-account answer /_chuan/tus/ and /_chuan/v1/{account,tokens} here, for
// working on the console before the server has them: the tus mock keeps the bytes in a temp
// file and stores the finished upload with an S3 PutObject signed with the Basic key pair; the
// account mock keeps tokens in memory. They are for development only: the tests never use them.
// Prints one JSON line {"url": ...} on stdout once listening.
import { createReadStream, createWriteStream, existsSync, mkdtempSync, statSync, promises as fsp } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  return process.argv[i + 1];
}
const flag = (name) => process.argv.includes(name);

const upstream = new URL(arg('--upstream', 'http://127.0.0.1:9000'));
const port = Number(arg('--port', '0'));
const dist = path.resolve(arg('--dist', path.join(repo, 'console', 'dist')));
const mockTus = flag('--mock-tus');
const mockAccount = flag('--mock-account');
const BASE = '/_chuan/console/';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
};

async function serveStatic(req, res, rel) {
  let file = path.join(dist, rel || 'index.html');
  if (!file.startsWith(dist + path.sep) && file !== dist) {
    res.writeHead(403).end();
    return;
  }
  if (!existsSync(file) || statSync(file).isDirectory()) file = path.join(dist, 'index.html');
  if (!existsSync(file)) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('console/dist is not built: npm run build in console/\n');
    return;
  }
  const immutable = rel.startsWith('assets/');
  res.writeHead(200, {
    'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
    'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    'x-content-type-options': 'nosniff',
  });
  if (req.method === 'HEAD') return res.end();
  createReadStream(file).pipe(res);
}

function proxy(req, res) {
  const opts = {
    host: upstream.hostname,
    port: upstream.port,
    method: req.method,
    path: req.url,
    headers: req.headers,
  };
  const up = http.request(opts, (ur) => {
    res.writeHead(ur.statusCode || 502, ur.headers);
    ur.pipe(res);
  });
  up.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`upstream error: ${e.message}\n`);
  });
  req.pipe(up);
}

function basic(req) {
  const h = req.headers.authorization || '';
  const m = /^Basic\s+(.+)$/i.exec(h);
  if (!m) return null;
  const s = Buffer.from(m[1], 'base64').toString('utf8');
  const i = s.indexOf(':');
  return i < 0 ? null : { ak: s.slice(0, i), sk: s.slice(i + 1) };
}

// ---- tus mock (development only) --------------------------------------------------------------
const tusDir = mockTus ? mkdtempSync(path.join(os.tmpdir(), 'chuan-tus-mock-')) : '';
const tusUploads = new Map();
let s3mod = null;

async function s3For(cred) {
  if (!s3mod) {
    const require = createRequire(path.join(repo, 'console', 'package.json'));
    s3mod = await import(require.resolve('@aws-sdk/client-s3'));
  }
  return new s3mod.S3Client({
    region: 'us-east-1',
    endpoint: upstream.origin,
    forcePathStyle: true,
    credentials: { accessKeyId: cred.ak, secretAccessKey: cred.sk },
  });
}

function parseMeta(h) {
  const out = {};
  for (const part of (h || '').split(',')) {
    const [k, v] = part.trim().split(' ');
    if (k) out[k] = v ? Buffer.from(v, 'base64').toString('utf8') : '';
  }
  return out;
}

async function tusHandler(req, res) {
  const base = { 'Tus-Resumable': '1.0.0', 'Cache-Control': 'no-store' };
  const cred = basic(req);
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { ...base, 'Tus-Version': '1.0.0', 'Tus-Extension': 'creation,termination' }).end();
    return;
  }
  if (!cred) {
    res.writeHead(401, base).end('credentials required');
    return;
  }
  const id = req.url.slice('/_chuan/tus/'.length).split('?')[0];
  if (req.method === 'POST' && !id) {
    const len = Number(req.headers['upload-length']);
    const meta = parseMeta(req.headers['upload-metadata']);
    if (!Number.isFinite(len) || !meta.bucket || !meta.key) {
      res.writeHead(400, base).end('Upload-Length and metadata bucket, key required');
      return;
    }
    const nid = crypto.randomBytes(12).toString('hex');
    const file = path.join(tusDir, nid);
    await fsp.writeFile(file, '');
    tusUploads.set(nid, { len, meta, file, offset: 0, ak: cred.ak });
    req.resume();
    if (len === 0) await finishTus(nid, cred);
    res.writeHead(201, { ...base, Location: `/_chuan/tus/${nid}` }).end();
    return;
  }
  const u = tusUploads.get(id);
  if (!u || u.ak !== cred.ak) {
    res.writeHead(404, base).end('no such upload');
    return;
  }
  if (req.method === 'HEAD') {
    res.writeHead(200, { ...base, 'Upload-Offset': String(u.offset), 'Upload-Length': String(u.len) }).end();
    return;
  }
  if (req.method === 'DELETE') {
    tusUploads.delete(id);
    await fsp.rm(u.file, { force: true });
    res.writeHead(204, base).end();
    return;
  }
  if (req.method === 'PATCH') {
    const off = Number(req.headers['upload-offset']);
    if (off !== u.offset) {
      req.resume();
      res.writeHead(409, base).end('offset mismatch');
      return;
    }
    const ws = createWriteStream(u.file, { flags: 'a' });
    let got = 0;
    req.on('data', (c) => {
      got += c.length;
    });
    req.pipe(ws);
    const done = () => {
      u.offset = statSync(u.file).size;
      return u.offset;
    };
    req.on('aborted', () => {
      ws.end();
    });
    ws.on('close', async () => {
      done();
      if (res.writableEnded || req.aborted || res.destroyed) return;
      try {
        if (u.offset === u.len) await finishTus(id, cred);
        res.writeHead(204, { ...base, 'Upload-Offset': String(u.offset) }).end();
      } catch (e) {
        res.writeHead(500, base).end(String(e));
      }
    });
    return;
  }
  res.writeHead(405, base).end();
}

async function finishTus(id, cred) {
  const u = tusUploads.get(id);
  const s3 = await s3For(cred);
  await s3.send(
    new s3mod.PutObjectCommand({
      Bucket: u.meta.bucket,
      Key: u.meta.key,
      Body: createReadStream(u.file),
      ContentLength: u.len,
      ContentType: u.meta.filetype || undefined,
    }),
  );
}

// ---- account/tokens mock (development only) ----------------------------------------------------
const mockTokens = new Map();

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    return null;
  }
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function accountHandler(req, res, p) {
  const cred = basic(req);
  if (!cred) return json(res, 401, { error: 'Unauthorized' });
  if (p === '/_chuan/v1/account' && req.method === 'GET') {
    return json(res, 200, {
      tenant: `mock-${cred.ak.slice(0, 6)}`,
      stored_bytes: 123456789,
      quota: { storage_bytes: 10 * 1024 ** 3, requests_per_month: null },
    });
  }
  const list = mockTokens.get(cred.ak) || [];
  mockTokens.set(cred.ak, list);
  if (p === '/_chuan/v1/tokens' && req.method === 'GET') {
    return json(
      res,
      200,
      list.map(({ secret: _s, ...t }) => t),
    );
  }
  if (p === '/_chuan/v1/tokens' && req.method === 'POST') {
    const b = await readJson(req);
    if (!b || !b.label || !b.bucket) return json(res, 400, { error: 'InvalidArgument', message: 'label and bucket required' });
    const t = {
      access_key: 'MOCK' + crypto.randomBytes(8).toString('hex').toUpperCase(),
      secret: crypto.randomBytes(20).toString('base64'),
      label: b.label,
      scope: { buckets: [b.bucket], prefixes: [b.prefix || ''], ops: b.ops || [] },
      expires_at: b.ttl_secs ? Date.now() + b.ttl_secs * 1000 : null,
    };
    list.push(t);
    return json(res, 201, { access_key: t.access_key, secret: t.secret, expires_at: t.expires_at });
  }
  const m = /^\/_chuan\/v1\/tokens\/(.+)$/.exec(p);
  if (m && req.method === 'DELETE') {
    const i = list.findIndex((t) => t.access_key === decodeURIComponent(m[1]));
    if (i < 0) return json(res, 404, { error: 'NoSuchToken' });
    list.splice(i, 1);
    res.writeHead(204).end();
    return;
  }
  return json(res, 404, { error: 'NotFound' });
}

const server = http.createServer((req, res) => {
  const p = (req.url || '/').split('?')[0];
  if (p === '/_chuan/console') {
    res.writeHead(308, { Location: BASE }).end();
    return;
  }
  if (p.startsWith(BASE) && (req.method === 'GET' || req.method === 'HEAD')) {
    void serveStatic(req, res, decodeURIComponent(p.slice(BASE.length)));
    return;
  }
  if (mockTus && p.startsWith('/_chuan/tus/')) {
    tusHandler(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500).end(String(e));
    });
    return;
  }
  if (mockAccount && (p === '/_chuan/v1/account' || p.startsWith('/_chuan/v1/tokens'))) {
    accountHandler(req, res, p).catch((e) => json(res, 500, { error: String(e) }));
    return;
  }
  proxy(req, res);
});
server.requestTimeout = 0;
server.listen(port, '127.0.0.1', () => {
  const { port: actual } = server.address();
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${actual}`, console: `http://127.0.0.1:${actual}${BASE}` }) + '\n');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
