#!/usr/bin/env node
// End-to-end test of Chuan's web console in Debian's Chromium, driven by playwright-core.
//
//   node tests/console/e2e.mjs --base http://127.0.0.1:9000 --ak AK --sk SK --artifacts DIR
//        [--ak2 AK2 --sk2 SK2]   a second tenant: instant upload with a proof of possession
//        [--console-url URL]     default <base>/_chuan/console/
//        [--chromium PATH]       default /usr/bin/chromium
//
// Signs in, creates a bucket, uploads a folder (folder picker) and dropped files (a drop event
// with a DataTransfer), cuts the network in the middle of a larger upload and sees it resume,
// reloads the page in the middle of another and sees it continue by itself (a copy kept in
// IndexedDB), and once more with copies turned off, continued from the "interrupted uploads"
// list, uploads a duplicate and sees the instant result, makes a share link and fetches it,
// downloads, filters, sorts, pages, renames and moves a file and a folder, deletes both (with
// confirmation), uses the account page (usage, scoped tokens) and checks the 375 px layout and
// keyboard focus. Screenshots go to DIR. Prints one JSON object on stdout (the last line):
// {ok, steps:[{name, ok, ms, detail}], expect:{present:{bucket/key: sha256}, absent:[...]},
//  tokens:{kept, revoked}, screenshots:[...], errors:[...]}; exit status 0 only when ok.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const MiB = 1024 * 1024;
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i < 0 ? dflt : process.argv[i + 1];
}

const base = (arg('--base') || '').replace(/\/+$/, '');
const ak = arg('--ak');
const sk = arg('--sk');
const ak2 = arg('--ak2');
const sk2 = arg('--sk2');
const artifacts = path.resolve(arg('--artifacts', 'console-artifacts'));
const consoleUrl = arg('--console-url', `${base}/_chuan/console/`);
const chromiumPath = arg('--chromium', '/usr/bin/chromium');
if (!base || !ak || !sk) {
  console.error('usage: e2e.mjs --base URL --ak AK --sk SK --artifacts DIR [--ak2 AK2 --sk2 SK2]');
  process.exit(2);
}
fs.mkdirSync(artifacts, { recursive: true });

const result = {
  ok: false,
  console_url: consoleUrl,
  chromium: null,
  buckets: [],
  steps: [],
  expect: { present: {}, absent: [] },
  tokens: {},
  instant: {},
  network: {},
  screenshots: [],
  errors: [],
};

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error('[e2e]', ...a);

// ---- local files ---------------------------------------------------------------------------
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'chuan-console-e2e-'));
function writeFile(rel, data) {
  const p = path.join(work, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
  return p;
}
const rnd = (n) => crypto.randomBytes(n);
const dupBytes = rnd(2 * MiB + 4321);
const files = {
  album: {
    'album/a.txt': Buffer.from('hello from the console e2e test\n'),
    'album/b.bin': rnd(100 * 1024),
    'album/dup-source.bin': dupBytes,
    'album/sub/c.txt': Buffer.from('third file, in a sub-folder\n'),
    'album/sub/deeper/d.json': Buffer.from('{"deep": true}\n'),
  },
  dragged: {
    'dragged/one.txt': Buffer.from('dragged from the file manager\n'),
    'dragged/inner/two.bin': rnd(70 * 1024 + 5),
    'dragged/inner/deepest/three.txt': Buffer.from('three levels down\n'),
  },
  big: rnd(40 * MiB + 777),
  big2: rnd(24 * MiB + 99),
  big3: rnd(20 * MiB + 3),
};
for (const [rel, data] of Object.entries(files.album)) writeFile(rel, data);
const albumDir = path.join(work, 'album');
for (const [rel, data] of Object.entries(files.dragged)) writeFile(rel, data);
const draggedDir = path.join(work, 'dragged');
const bigPath = writeFile('big.bin', files.big);
const big2Path = writeFile('reload/big2.bin', files.big2);
const big3Path = writeFile('reload/big3.bin', files.big3);
const dupPath = writeFile('dup/dup-copy.bin', dupBytes);

// ---- harness -----------------------------------------------------------------------------------
let browser;
let context;
let page;
let shotN = 0;

async function shot(name) {
  const file = path.join(artifacts, `${String(++shotN).padStart(2, '0')}-${name}.png`);
  try {
    await page.screenshot({ path: file, fullPage: true });
    result.screenshots.push(file);
  } catch (e) {
    log('screenshot failed', name, e.message);
  }
  return file;
}

async function step(name, fn, { fatal = true } = {}) {
  const t0 = Date.now();
  log('step:', name);
  try {
    const detail = await fn();
    result.steps.push({ name, ok: true, ms: Date.now() - t0, detail: detail ?? null });
    return true;
  } catch (e) {
    const msg = e && e.stack ? e.stack.split('\n').slice(0, 4).join('\n') : String(e);
    log('FAILED:', name, msg);
    result.steps.push({ name, ok: false, ms: Date.now() - t0, detail: msg });
    await shot(`failed-${name.replace(/[^a-z0-9]+/gi, '-')}`);
    if (fatal) throw new Error(`step ${name} failed`);
    return false;
  }
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** Waits for the upload row of `key` to reach done (or fail). */
async function waitUpload(key, timeout = 90_000) {
  const h = await page.waitForFunction(
    (k) => {
      const row = [...document.querySelectorAll('.upload-row')].find((r) => r.dataset.key === k);
      if (!row) return null;
      const s = row.dataset.state;
      return s === 'done' || s === 'error' ? { state: s, instant: row.dataset.instant, text: row.textContent } : null;
    },
    key,
    { timeout, polling: 100 },
  );
  const v = await h.jsonValue();
  check(v.state === 'done', `upload of ${key} ended ${v.state}: ${v.text}`);
  return v;
}

async function rowState(key) {
  return page.evaluate((k) => {
    const row = [...document.querySelectorAll('.upload-row')].find((r) => r.dataset.key === k);
    return row
      ? {
          state: row.dataset.state,
          restored: row.dataset.restored,
          resumedAt: row.querySelector('[data-resumed-at]')?.dataset.resumedAt ?? null,
        }
      : null;
  }, key);
}

async function listedNames() {
  await page.waitForFunction(() => !document.querySelector('table.listing[aria-busy="true"]'), null, { timeout: 15_000 });
  return page.$$eval('table.listing tbody tr[data-name]', (rows) => rows.map((r) => r.dataset.name));
}

async function waitListed(name, present = true, timeout = 20_000) {
  await page.waitForFunction(
    ([n, p]) => {
      const busy = document.querySelector('table.listing[aria-busy="true"]');
      if (busy) return false;
      const found = [...document.querySelectorAll('table.listing tbody tr[data-name]')].some((r) => r.dataset.name === n);
      return found === p;
    },
    [name, present],
    { timeout, polling: 100 },
  );
}

async function goBucket(bucket, prefix = '') {
  const hash = `#/b/${encodeURIComponent(bucket)}/${prefix.split('/').map(encodeURIComponent).join('/')}`;
  const label = prefix ? prefix.replace(/\/$/, '').split('/').pop() : bucket;
  await page.evaluate((h) => {
    window.location.hash = h;
  }, hash);
  await page.waitForFunction(
    (l) =>
      document.querySelector('main h1')?.textContent === l &&
      !!document.querySelector('table.listing') &&
      !document.querySelector('table.listing[aria-busy="true"]'),
    label,
    { timeout: 15_000 },
  );
}

async function signIn(a, s) {
  await page.getByLabel('Access key').fill(a);
  await page.getByLabel('Secret').fill(s);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Buckets', level: 1 }).waitFor({ timeout: 15_000 });
}

async function createBucket(name) {
  await page.getByLabel('New bucket name').fill(name);
  await page.getByRole('button', { name: 'Create bucket' }).click();
  await page.getByRole('link', { name }).waitFor({ timeout: 15_000 });
  result.buckets.push(name);
}

/** Buttons without a name, inputs without a label: none allowed. */
async function a11yProblems() {
  return page.evaluate(() => {
    const problems = [];
    const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
    for (const b of document.querySelectorAll('button')) {
      if (!visible(b)) continue;
      const name = (b.getAttribute('aria-label') || b.textContent || '').trim();
      if (!name) problems.push(`button without a name: ${b.outerHTML.slice(0, 80)}`);
    }
    for (const i of document.querySelectorAll('input, select, textarea')) {
      if (i.type === 'hidden' || i.hidden) continue;
      const labelled = (i.labels && i.labels.length > 0) || i.getAttribute('aria-label') || i.getAttribute('aria-labelledby');
      if (!labelled) problems.push(`field without a label: ${i.outerHTML.slice(0, 80)}`);
    }
    return problems;
  });
}

// request log of the tus endpoint and the instant API
const tusLog = [];
const fileChoosers = [];
const instantLog = [];

async function main() {
  browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS, timeout: 60_000 });
  result.chromium = browser.version();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  context.setDefaultTimeout(20_000);
  page = await context.newPage();
  page.on('pageerror', (e) => result.errors.push(`pageerror: ${e.message}`));
  page.on('filechooser', (fc) => fileChoosers.push(fc));
  page.on('console', (m) => {
    if (m.type() === 'error') result.errors.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (r.url().includes('/_chuan/tus/')) {
      const h = r.headers();
      let key = null;
      const meta = h['upload-metadata'] || '';
      for (const part of meta.split(',')) {
        const [k, v] = part.trim().split(' ');
        if (k === 'key' && v) key = Buffer.from(v, 'base64').toString('utf8');
      }
      tusLog.push({ method: r.method(), url: r.url(), offset: h['upload-offset'] ?? null, key, t: Date.now() });
    }
  });
  page.on('response', async (r) => {
    const u = r.url();
    if (u.includes('/_chuan/v1/instant/')) {
      let body = null;
      try {
        body = await r.json();
      } catch {
        body = null;
      }
      instantLog.push({ op: u.split('/').pop(), status: r.status(), body });
    }
  });

  const suffix = crypto.randomBytes(3).toString('hex');
  const bucket = `e2e-${suffix}`;
  const present = result.expect.present;
  const absent = result.expect.absent;

  await step('open console', async () => {
    const resp = await page.goto(consoleUrl, { waitUntil: 'load' });
    check(resp, 'no response');
    check(resp.status() === 200, `GET ${consoleUrl}: HTTP ${resp.status()} (is the console served there?)`);
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await shot('login');
    return { status: resp.status() };
  });

  await step('wrong secret is refused', async () => {
    await page.getByLabel('Access key').fill(ak);
    await page.getByLabel('Secret').fill(sk + 'x');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    return { alert: (await alert.textContent()).trim() };
  });

  await step('sign in', async () => {
    await signIn(ak, sk);
    const stored = await page.evaluate(() => Object.keys(sessionStorage));
    const inLocal = await page.evaluate((s) => Object.values(localStorage).some((v) => String(v).includes(s)), sk);
    check(!inLocal, 'the secret was written to localStorage');
    return { sessionStorage: stored };
  });

  await step('create bucket', async () => {
    await createBucket(bucket);
    await shot('buckets');
    await page.getByRole('link', { name: bucket }).click();
    await page.getByRole('heading', { name: bucket, level: 1 }).waitFor();
    return { bucket };
  });

  await step('upload a folder (folder picker)', async () => {
    await page.getByTestId('folder-input').setInputFiles(albumDir);
    for (const rel of Object.keys(files.album)) {
      await waitUpload(rel);
      present[`${bucket}/${rel}`] = sha256(files.album[rel]);
    }
    await waitListed('album');
    await shot('folder-uploaded');
    await goBucket(bucket, 'album/');
    const names = await listedNames();
    for (const n of ['a.txt', 'b.bin', 'dup-source.bin', 'sub']) check(names.includes(n), `album/ lists ${names}, not ${n}`);
    return { listed: names };
  });

  await step('upload dropped files (drop event with a DataTransfer)', async () => {
    await goBucket(bucket, '');
    const dropped = { 'dropped-1.txt': 'first dropped file\n', 'dropped-2.txt': 'second dropped file, a bit longer\n' };
    await page.evaluate((fl) => {
      const dt = new DataTransfer();
      for (const [name, text] of Object.entries(fl)) dt.items.add(new File([text], name, { type: 'text/plain' }));
      const zone = document.querySelector('[data-testid="dropzone"]');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
      }
    }, dropped);
    for (const [name, text] of Object.entries(dropped)) {
      await waitUpload(name);
      present[`${bucket}/${name}`] = sha256(Buffer.from(text));
    }
    await waitListed('dropped-2.txt');
    return { dropped: Object.keys(dropped) };
  });

  await step('drag a folder in from the file manager (a native drag of a directory path)', async () => {
    await goBucket(bucket, '');
    // The browser's own drag path (Input.dispatchDragEvent), as a drag from the desktop: the
    // page sees a directory entry and walks it, sub-folders included.
    const box = await page.getByTestId('dropzone').boundingBox();
    const x = box.x + box.width / 2;
    const y = box.y + box.height / 2;
    const cdp = await context.newCDPSession(page);
    const data = { items: [], files: [draggedDir], dragOperationsMask: 1 };
    for (const type of ['dragEnter', 'dragOver', 'drop']) await cdp.send('Input.dispatchDragEvent', { type, x, y, data });
    await cdp.detach();
    for (const [rel, bytes] of Object.entries(files.dragged)) {
      await waitUpload(rel);
      present[`${bucket}/${rel}`] = sha256(bytes);
    }
    await waitListed('dragged');
    await goBucket(bucket, 'dragged/inner/');
    const names = await listedNames();
    check(names.includes('two.bin') && names.includes('deepest'), `dragged/inner/ lists ${names}`);
    await shot('folder-dragged');
    await goBucket(bucket, '');
    return { dragged: Object.keys(files.dragged) };
  });

  await step('network cut mid-upload, then resumed', async () => {
    let patches = 0;
    let cut = null;
    await page.route('**/_chuan/tus/**', async (route) => {
      const req = route.request();
      if (req.method() === 'PATCH' && ++patches === 2 && !cut) {
        cut = { at: Date.now(), offset: req.headers()['upload-offset'] };
        await context.setOffline(true);
        await route.abort('internetdisconnected');
        return;
      }
      await route.continue().catch(() => {});
    });
    await page.getByTestId('file-input').setInputFiles(bigPath);
    const key = 'big.bin';
    await page.waitForFunction(
      (k) => [...document.querySelectorAll('.upload-row')].find((r) => r.dataset.key === k)?.dataset.state === 'offline',
      key,
      { timeout: 60_000, polling: 50 },
    );
    const offlineState = await rowState(key);
    await shot('network-offline');
    await sleep(1500);
    await context.setOffline(false);
    await waitUpload(key, 120_000);
    await page.unroute('**/_chuan/tus/**');
    const st = await rowState(key);
    const mine = tusLog.filter((r) => r.t >= (cut?.at ?? 0));
    const posts = tusLog.filter((r) => r.method === 'POST' && r.key === key).length;
    const heads = mine.filter((r) => r.method === 'HEAD').length;
    const patchOffsets = mine.filter((r) => r.method === 'PATCH').map((r) => Number(r.offset));
    check(cut, 'the second PATCH never came');
    check(posts === 1, `big.bin created ${posts} tus uploads (expected 1: resumed, not restarted)`);
    check(heads >= 1, 'no HEAD after the network came back');
    check(Number(st.resumedAt) > 0, `resumed at ${st.resumedAt}`);
    check(patchOffsets.length > 0 && patchOffsets[0] > 0, `first PATCH after the cut at offset ${patchOffsets[0]}`);
    present[`${bucket}/${key}`] = sha256(files.big);
    await shot('network-resumed');
    result.network = { cut_at_offset: Number(cut.offset), state_while_offline: offlineState.state, resumed_at: Number(st.resumedAt), posts, heads };
    return result.network;
  });

  await step('instant upload of a duplicate (same tenant: no proof)', async () => {
    const before = instantLog.length;
    await page.getByTestId('file-input').setInputFiles(dupPath);
    const v = await waitUpload('dup-copy.bin');
    check(v.instant === 'true', `dup-copy.bin was not instant: ${v.text}`);
    check(/instant/i.test(v.text), `row does not say instant: ${v.text}`);
    const posts = tusLog.filter((r) => r.method === 'POST' && r.key === 'dup-copy.bin').length;
    check(posts === 0, 'bytes were sent with tus for an instant upload');
    const calls = instantLog.slice(before);
    const ch = calls.find((c) => c.op === 'challenge');
    const cm = calls.find((c) => c.op === 'commit');
    check(ch && ch.status === 200 && ch.body.proof_required === false, `challenge: ${JSON.stringify(ch)}`);
    check(cm && cm.status === 200 && cm.body.hit === true, `commit: ${JSON.stringify(cm)}`);
    present[`${bucket}/dup-copy.bin`] = sha256(dupBytes);
    result.instant.same_tenant = { proof_required: ch.body.proof_required, hit: cm.body.hit };
    await shot('instant');
    return result.instant.same_tenant;
  });

  // Starts an upload of `file` with slowed PATCHes, reloads the page once its first PATCH is
  // answered and returns the offset the server had then and the POSTs made for `key` so far.
  async function reloadMidUpload(file, key, beforeReload = async () => {}) {
    let slow = true;
    await page.route('**/_chuan/tus/**', async (route) => {
      if (slow && route.request().method() === 'PATCH') await sleep(1200);
      await route.continue().catch(() => {});
    });
    const donePatch = page.waitForResponse((r) => r.url().includes('/_chuan/tus/') && r.request().method() === 'PATCH' && r.status() === 204, {
      timeout: 90_000,
    });
    await page.getByTestId('file-input').setInputFiles(file);
    const firstPatchDone = await donePatch;
    const offsetBefore = Number(firstPatchDone.headers()['upload-offset']);
    await beforeReload();
    slow = false;
    await page.reload({ waitUntil: 'load' });
    await page.unroute('**/_chuan/tus/**');
    const posts = tusLog.filter((r) => r.method === 'POST' && r.key === key).length;
    return { offsetBefore, posts };
  }

  const keptCopies = () =>
    page.evaluate(
      () =>
        new Promise((resolve) => {
          const req = indexedDB.open('chuan-console');
          req.onsuccess = () => {
            const db = req.result;
            if (!db.objectStoreNames.contains('kept-files')) return resolve([]);
            const all = db.transaction('kept-files').objectStore('kept-files').getAll();
            all.onsuccess = () => resolve(all.result.map((r) => ({ key: r.key, size: r.file.size })));
            all.onerror = () => resolve(['unreadable']);
          };
          req.onerror = () => resolve(['unopenable']);
        }),
    );

  await step('reload mid-upload, continued by itself from the copy kept in the browser', async () => {
    check(await page.getByTestId('keep-copies').isChecked(), 'keeping copies for a reload is on by default');
    let secondTab = null;
    const { offsetBefore, posts } = await reloadMidUpload(big2Path, 'big2.bin', async () => {
      const copies = await keptCopies();
      check(copies.some((c) => c.key === 'big2.bin' && c.size === files.big2.length), `kept copies before the reload: ${JSON.stringify(copies)}`);
      // A second tab of the same key pair sees the copy but leaves it to the tab uploading it.
      const tab = await context.newPage();
      await tab.goto(consoleUrl);
      await tab.getByLabel('Access key').fill(ak);
      await tab.getByLabel('Secret').fill(sk);
      await tab.getByRole('button', { name: 'Sign in' }).click();
      await tab.getByRole('heading', { name: 'Buckets', level: 1 }).waitFor({ timeout: 15_000 });
      await sleep(2500); // longer than a restore's retries
      secondTab = { rows: await tab.$$eval('.upload-row', (rows) => rows.map((r) => r.dataset.key)) };
      await tab.close();
    });
    check(secondTab && secondTab.rows.length === 0, `a second tab took over uploads: ${JSON.stringify(secondTab)}`);
    // No file picked again: the row comes back and finishes on its own.
    await page.waitForSelector('.upload-row[data-key="big2.bin"]', { timeout: 15_000 });
    await waitUpload('big2.bin', 120_000);
    const st = await rowState('big2.bin');
    check(st.restored === 'true', `big2.bin row after the reload: ${JSON.stringify(st)}`);
    const postsAfter = tusLog.filter((r) => r.method === 'POST' && r.key === 'big2.bin').length;
    check(postsAfter === posts && posts === 1, `big2.bin made ${postsAfter} tus uploads (1 expected: resumed, not restarted)`);
    check(Number(st.resumedAt) >= offsetBefore && offsetBefore > 0, `resumed at ${st.resumedAt}, stored before reload ${offsetBefore}`);
    let left = await keptCopies();
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await sleep(100); // dropped right after the upload ends
      left = await keptCopies();
    }
    check(left.length === 0, `copies kept after the upload finished: ${JSON.stringify(left)}`);
    await shot('continued-after-reload');
    present[`${bucket}/big2.bin`] = sha256(files.big2);
    return { stored_before_reload: offsetBefore, resumed_at: Number(st.resumedAt) };
  });

  await step('reload mid-upload with copies off, continued from the interrupted list', async () => {
    await page.getByTestId('keep-copies').uncheck();
    const { offsetBefore, posts } = await reloadMidUpload(big3Path, 'big3.bin', async () => {
      const copies = await keptCopies();
      check(copies.length === 0, `copies kept although turned off: ${JSON.stringify(copies)}`);
    });
    await page.getByRole('heading', { name: 'Interrupted uploads' }).waitFor({ timeout: 15_000 });
    check(!(await page.getByTestId('keep-copies').isChecked()), 'the choice to keep no copies survives the reload');
    const pendingKeys = await page.$$eval('.pending-row', (rows) => rows.map((r) => r.dataset.key));
    check(pendingKeys.includes('big3.bin'), `interrupted list: ${pendingKeys}`);
    await shot('interrupted-after-reload');
    await page.getByTestId('resume-input').setInputFiles(big3Path);
    await waitUpload('big3.bin', 120_000);
    const st = await rowState('big3.bin');
    const postsAfter = tusLog.filter((r) => r.method === 'POST' && r.key === 'big3.bin').length;
    check(postsAfter === posts, 'the resumed upload created a new tus upload');
    check(Number(st.resumedAt) >= offsetBefore && offsetBefore > 0, `resumed at ${st.resumedAt}, stored before reload ${offsetBefore}`);
    const leftover = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')));
    check(leftover.length === 0, `tus fingerprints left after success: ${leftover}`);
    await page.getByTestId('keep-copies').check();
    present[`${bucket}/big3.bin`] = sha256(files.big3);
    return { stored_before_reload: offsetBefore, resumed_at: Number(st.resumedAt) };
  });

  await step('share link (7 days) fetched without credentials', async () => {
    await goBucket(bucket, '');
    await page.getByRole('button', { name: 'Share dup-copy.bin' }).click();
    await page.getByLabel('Link expires after').selectOption({ label: '7 days' });
    await page.getByRole('button', { name: 'Create link' }).click();
    const input = page.getByTestId('share-url');
    await input.waitFor();
    const url = await input.inputValue();
    check(/X-Amz-Expires=604800/.test(url), `link without a 7-day expiry: ${url}`);
    await shot('share-link');
    const r = await fetch(url);
    check(r.status === 200, `GET share link: HTTP ${r.status}`);
    const body = Buffer.from(await r.arrayBuffer());
    check(sha256(body) === sha256(dupBytes), 'share link bytes differ');
    await page.getByRole('button', { name: 'Done' }).click();
    return { bytes: body.length, expires: 604800 };
  });

  await step('download', async () => {
    const dl = page.waitForEvent('download', { timeout: 20_000 });
    await page.getByRole('button', { name: 'Download dropped-1.txt' }).click();
    const d = await dl;
    const saved = path.join(artifacts, 'downloaded-dropped-1.txt');
    await d.saveAs(saved);
    const got = fs.readFileSync(saved);
    check(sha256(got) === present[`${bucket}/dropped-1.txt`], 'downloaded bytes differ');
    return { suggested: d.suggestedFilename(), bytes: got.length };
  });

  await step('filter, sort and page', async () => {
    await page.getByLabel('Search in this folder').fill('dropped');
    let names = await listedNames();
    check(names.length === 2 && names.every((n) => n.includes('dropped')), `filter "dropped": ${names}`);
    await page.getByLabel('Search in this folder').fill('');
    await page.getByLabel('Sort by').selectOption('size');
    await page.getByRole('button', { name: /Sort ascending/ }).click();
    names = await page.$$eval('table.listing tbody tr.file', (rows) => rows.map((r) => r.dataset.name));
    check(names[0] === 'big.bin', `largest first: ${names}`);
    await page.getByLabel('Sort by').selectOption('name');
    await page.getByRole('button', { name: /Sort descending/ }).click();
    await page.evaluate(() => sessionStorage.setItem('chuan.console.pageSize', '1'));
    await goBucket(bucket, 'album/');
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.getByRole('button', { name: 'Load more' }).waitFor();
    const first = (await listedNames()).length;
    await page.getByRole('button', { name: 'Load more' }).click();
    await page.waitForFunction((n) => document.querySelectorAll('table.listing tbody tr[data-name]').length > n, first);
    if (await page.getByRole('button', { name: 'Load all' }).count()) await page.getByRole('button', { name: 'Load all' }).click();
    await page.getByRole('button', { name: 'Load more' }).waitFor({ state: 'detached' });
    const all = await listedNames();
    await page.evaluate(() => sessionStorage.removeItem('chuan.console.pageSize'));
    check(first === 1 && all.length === 4, `pages: first ${first}, all ${all}`);
    return { first_page: first, all };
  });

  await step('rename a file into a new folder', async () => {
    await goBucket(bucket, '');
    await page.getByRole('button', { name: 'Rename dropped-1.txt' }).click();
    await page.getByLabel('New path').fill('renamed/dropped-1-renamed.txt');
    await shot('rename-dialog');
    await page.getByRole('button', { name: 'Rename', exact: true }).click();
    await page.locator('dialog[open]').waitFor({ state: 'detached' });
    await waitListed('renamed');
    await waitListed('dropped-1.txt', false);
    present[`${bucket}/renamed/dropped-1-renamed.txt`] = present[`${bucket}/dropped-1.txt`];
    delete present[`${bucket}/dropped-1.txt`];
    absent.push(`${bucket}/dropped-1.txt`);
    return { to: 'renamed/dropped-1-renamed.txt' };
  });

  await step('move a folder (every key under the prefix)', async () => {
    await goBucket(bucket, 'album/');
    await page.getByRole('button', { name: 'Rename folder sub' }).click();
    await page.getByLabel('New path').fill('album/moved-sub');
    await page.getByRole('button', { name: 'Rename', exact: true }).click();
    await page.locator('dialog[open]').waitFor({ state: 'detached', timeout: 30_000 });
    await waitListed('moved-sub');
    await waitListed('sub', false);
    for (const rel of ['sub/c.txt', 'sub/deeper/d.json']) {
      present[`${bucket}/album/moved-${rel}`] = present[`${bucket}/album/${rel}`];
      delete present[`${bucket}/album/${rel}`];
      absent.push(`${bucket}/album/${rel}`);
    }
    await goBucket(bucket, 'album/moved-sub/deeper/');
    await waitListed('d.json');
    await shot('moved-folder');
    return { to: 'album/moved-sub/' };
  });

  await step('delete a file and a folder (with confirmation)', async () => {
    await goBucket(bucket, '');
    await page.getByRole('button', { name: 'Delete dropped-2.txt' }).click();
    const dlg = page.locator('dialog[open]');
    await dlg.getByText('cannot be undone').waitFor();
    await shot('delete-confirm');
    await dlg.getByRole('button', { name: 'Cancel' }).click();
    await dlg.waitFor({ state: 'detached' });
    await waitListed('dropped-2.txt', true);
    await page.getByRole('button', { name: 'Delete dropped-2.txt' }).click();
    await page.locator('dialog[open]').getByRole('button', { name: 'Delete', exact: true }).click();
    await waitListed('dropped-2.txt', false);
    delete present[`${bucket}/dropped-2.txt`];
    absent.push(`${bucket}/dropped-2.txt`);
    await page.getByRole('button', { name: 'Delete folder renamed' }).click();
    await page.locator('dialog[open]').getByRole('button', { name: 'Delete', exact: true }).click();
    await waitListed('renamed', false);
    delete present[`${bucket}/renamed/dropped-1-renamed.txt`];
    absent.push(`${bucket}/renamed/dropped-1-renamed.txt`);
    return { deleted: ['dropped-2.txt', 'renamed/'] };
  });

  await step('keyboard: drop-zone buttons reachable, focus visible', async () => {
    await goBucket(bucket, '');
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await page.locator('body').focus();
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.textContent?.trim() === 'Choose files');
    }
    check(reached, '"Choose files" not reachable with Tab');
    const outline = await page.evaluate(() => {
      const cs = getComputedStyle(document.activeElement);
      return { style: cs.outlineStyle, width: cs.outlineWidth };
    });
    check(outline.style !== 'none' && parseFloat(outline.width) >= 2, `no visible focus: ${JSON.stringify(outline)}`);
    // choosers are intercepted from the start (main): a chooser opened by Enter is recorded there
    const before = fileChoosers.length;
    await page.keyboard.press('Enter');
    for (let i = 0; i < 50 && fileChoosers.length === before; i++) await sleep(100);
    check(fileChoosers.length > before, 'Enter on "Choose files" opened no file chooser');
    const fc = fileChoosers[fileChoosers.length - 1];
    check(fc.isMultiple(), 'file chooser not multiple');
    await shot('keyboard-focus');
    const problems = await a11yProblems();
    check(problems.length === 0, problems.join('; '));
    return { outline };
  });

  await step(
    'account: usage and quota',
    async () => {
      await page.getByRole('link', { name: 'Account' }).click();
      await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
      const tenant = page.getByTestId('tenant');
      await Promise.race([tenant.waitFor(), page.getByText(/Usage unavailable/).waitFor()]);
      const err = await page.getByText(/Usage unavailable/).count();
      await shot('account');
      if (err) throw new Error((await page.getByText(/Usage unavailable/).textContent()) || 'usage unavailable');
      const stored = await page.getByTestId('stored-bytes').textContent();
      return { tenant: await tenant.textContent(), stored };
    },
    { fatal: false },
  );

  await step(
    'account: scoped tokens (create, secret shown once, revoke)',
    async () => {
      if (!(await page.getByRole('heading', { name: 'Account', level: 1 }).count())) {
        await page.getByRole('link', { name: 'Account' }).click();
      }
      await page.getByRole('heading', { name: 'New scoped token' }).waitFor();
      const make = async (label, ops) => {
        await page.getByLabel('Label').fill(label);
        await page.getByLabel('Bucket', { exact: true }).selectOption(bucket);
        await page.getByLabel('Key prefix (optional)').fill('album/');
        for (const op of ['read', 'write', 'list', 'delete']) {
          const box = page.getByRole('checkbox', { name: op });
          if ((await box.isChecked()) !== ops.includes(op)) await box.click();
        }
        await page.getByLabel('Expires after').selectOption({ label: '1 day' });
        await page.getByRole('button', { name: 'Create token' }).click();
        await Promise.race([page.getByTestId('token-secret').waitFor(), page.getByText(/Tokens unavailable|does not offer/).first().waitFor()]);
        const secretField = page.getByTestId('token-secret');
        check(await secretField.count(), (await page.getByRole('alert').allTextContents()).join(' ') || 'no secret shown');
        const t = { access_key: await page.getByTestId('token-access-key').inputValue(), secret: await secretField.inputValue(), label };
        await shot(`token-secret-${label}`);
        await page.getByRole('button', { name: 'I have copied it' }).click();
        await page.locator(`tr[data-access-key="${t.access_key}"]`).waitFor();
        const shownAgain = await page.evaluate((s) => document.body.innerText.includes(s), t.secret);
        check(!shownAgain, 'the secret is still shown after closing');
        return t;
      };
      const kept = await make('e2e-read', ['read', 'list']);
      const revoked = await make('e2e-revoked', ['read', 'list', 'write']);
      await page.getByRole('button', { name: `Revoke token ${revoked.label}` }).click();
      await page.locator('dialog[open]').getByRole('button', { name: 'Revoke', exact: true }).click();
      await page.locator(`tr[data-access-key="${revoked.access_key}"]`).waitFor({ state: 'detached' });
      result.tokens = { bucket, prefix: 'album/', kept: { ...kept, ops: ['read', 'list'] }, revoked: { ...revoked } };
      // An upload token (Bearer) for a web page: shown once, listed by its id, and it uploads.
      await page.getByRole('radio', { name: /Upload token/ }).check();
      await page.getByLabel('Label').fill('e2e-upload');
      await page.getByLabel('Bucket', { exact: true }).selectOption(bucket);
      await page.getByLabel('Key prefix (optional)').fill('uploads/');
      await page.getByLabel('Expires after').selectOption({ label: '1 day' });
      check(!(await page.getByLabel('Expires after').locator('option', { hasText: '1 year' }).count()), 'upload tokens offer a year');
      await page.getByRole('button', { name: 'Create token' }).click();
      const token = await page.getByTestId('upload-token').inputValue();
      await shot('upload-token');
      await page.getByRole('button', { name: 'I have copied it' }).click();
      const id = `upload-token:${sha256(Buffer.from(token))}`;
      await page.locator(`tr[data-access-key="${id}"]`).waitFor();
      check(!(await page.evaluate((t) => document.body.innerText.includes(t), token)), 'the upload token is still shown');
      const bytes = Buffer.from('uploaded with an upload token\n');
      const meta = `bucket ${Buffer.from(bucket).toString('base64')},key ${Buffer.from('uploads/via-token.txt').toString('base64')}`;
      const res = await fetch(`${base}/_chuan/tus/`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${token}`,
          'Tus-Resumable': '1.0.0',
          'Upload-Length': String(bytes.length),
          'Upload-Metadata': meta,
          'Content-Type': 'application/offset+octet-stream',
        },
        body: bytes,
      });
      check(res.status === 201 && res.headers.get('upload-offset') === String(bytes.length), `tus with the upload token: HTTP ${res.status}`);
      present[`${bucket}/uploads/via-token.txt`] = sha256(bytes);
      // Revoked from its row (its id holds a ':' the page percent-encodes): refused at once.
      await page.getByRole('radio', { name: /Key pair/ }).check();
      const second = await make('e2e-kept-after', ['read', 'list']);
      await page.getByRole('button', { name: 'Revoke token e2e-upload' }).click();
      await page.locator('dialog[open]').getByRole('button', { name: 'Revoke', exact: true }).click();
      await page.locator(`tr[data-access-key="${id}"]`).waitFor({ state: 'detached' });
      check(await page.locator(`tr[data-access-key="${second.access_key}"]`).count(), 'another token went with it');
      const after = await fetch(`${base}/_chuan/tus/`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${token}`,
          'Tus-Resumable': '1.0.0',
          'Upload-Length': '1',
          'Upload-Metadata': `bucket ${Buffer.from(bucket).toString('base64')},key ${Buffer.from('uploads/revoked.txt').toString('base64')}`,
        },
      });
      check(after.status === 401, `tus with a revoked upload token: HTTP ${after.status}`);
      return { kept: kept.access_key, revoked: revoked.access_key, upload_token: id };
    },
    { fatal: false },
  );

  await step('375 px layout', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    const overflow = async () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    const out = {};
    await goBucket(bucket, '');
    await page.getByRole('button', { name: 'Choose folder' }).waitFor();
    out.browser = await overflow();
    await shot('mobile-browser');
    const actions = await page.getByRole('button', { name: 'Share dup-copy.bin' }).boundingBox();
    check(actions && actions.x >= 0 && actions.x + actions.width <= 375, `row actions off-screen: ${JSON.stringify(actions)}`);
    await page.getByRole('button', { name: 'Share dup-copy.bin' }).click();
    await page.getByRole('button', { name: 'Create link' }).click();
    await page.getByTestId('share-url').waitFor();
    out.share = await overflow();
    await shot('mobile-share');
    await page.getByRole('button', { name: 'Done' }).click();
    await page.evaluate(() => {
      window.location.hash = '#/account';
    });
    await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    await sleep(300);
    out.account = await overflow();
    await shot('mobile-account');
    await page.evaluate(() => {
      window.location.hash = '#/';
    });
    await page.getByRole('heading', { name: 'Buckets', level: 1 }).waitFor();
    out.buckets = await overflow();
    await shot('mobile-buckets');
    for (const [k, v] of Object.entries(out)) check(v <= 1, `${k}: ${v}px wider than the 375 px viewport`);
    await page.setViewportSize({ width: 1280, height: 900 });
    return { horizontal_overflow_px: out };
  });

  await step('sign out (forgets the credentials and the copies kept for resuming)', async () => {
    // An upload held at its creation keeps its copy until the user signs out.
    await goBucket(bucket, '');
    await page.route('**/_chuan/tus/**', async (route) => {
      if (route.request().method() === 'POST') await sleep(4000);
      await route.continue().catch(() => {});
    });
    await page.getByTestId('file-input').setInputFiles({ name: 'held.txt', mimeType: 'text/plain', buffer: Buffer.from('held at creation\n') });
    let copies = [];
    for (let i = 0; i < 50 && !copies.some((c) => c.key === 'held.txt'); i++) {
      await sleep(100);
      copies = await keptCopies();
    }
    check(copies.some((c) => c.key === 'held.txt'), `no copy kept for a queued upload: ${JSON.stringify(copies)}`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await page.unroute('**/_chuan/tus/**');
    const left = await page.evaluate(() => sessionStorage.getItem('chuan.console.creds'));
    check(left === null, 'credentials left in sessionStorage');
    let after = await keptCopies();
    for (let i = 0; i < 50 && after.length > 0; i++) {
      await sleep(100);
      after = await keptCopies();
    }
    check(after.length === 0, `copies left after sign-out: ${JSON.stringify(after)}`);
  });

  if (ak2 && sk2) {
    await step('instant upload across tenants (proof of possession)', async () => {
      await signIn(ak2, sk2);
      const bucket2 = `e2e-${suffix}-b`;
      await createBucket(bucket2);
      await goBucket(bucket2, '');
      const before = instantLog.length;
      await page.getByTestId('file-input').setInputFiles(dupPath);
      const v = await waitUpload('dup-copy.bin');
      check(v.instant === 'true', `not instant for the second tenant: ${v.text}`);
      const calls = instantLog.slice(before);
      const ch = calls.find((c) => c.op === 'challenge');
      const cm = calls.find((c) => c.op === 'commit');
      check(ch && ch.body.proof_required === true && ch.body.ranges.length > 0, `challenge: ${JSON.stringify(ch)}`);
      check(cm && cm.body.hit === true, `commit: ${JSON.stringify(cm)}`);
      present[`${bucket2}/dup-copy.bin`] = sha256(dupBytes);
      result.instant.other_tenant = { proof_required: true, ranges: ch.body.ranges.length, hit: true };
      await shot('instant-with-proof');
      await page.getByRole('button', { name: 'Sign out' }).click();
      return result.instant.other_tenant;
    });
  }
}

let exitCode = 1;
try {
  await main();
} catch (e) {
  if (!result.steps.some((s) => !s.ok)) result.errors.push(String(e && e.stack ? e.stack : e));
} finally {
  try {
    await browser?.close();
  } catch {
    // already gone
  }
  fs.rmSync(work, { recursive: true, force: true });
  result.ok = result.steps.length > 0 && result.steps.every((s) => s.ok) && !result.errors.some((e) => e.startsWith('pageerror'));
  exitCode = result.ok ? 0 : 1;
  process.stdout.write(JSON.stringify(result) + '\n');
}
process.exit(exitCode);
