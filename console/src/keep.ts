// Copies of queued files kept in this browser (IndexedDB), so that an upload interrupted by a
// page reload resumes by itself: a page cannot reopen a file the user picked before the reload,
// but a Blob stored in IndexedDB comes back with its name, size, type and lastModified — and so
// with the same tus fingerprint, which finds the upload on the server and its offset.
//
// Bounded: files up to KEEP_MAX_FILE, KEEP_MAX_TOTAL for all copies (copies are written one at
// a time, so the total holds); bigger files fall back to the "interrupted uploads" list (pick
// the file again). A copy is dropped when its upload ends (done, canceled or failed), after
// KEEP_MAX_AGE_MS (whichever key pair it belongs to), for the key pair at sign-out, and all of
// them when the user turns copies off (a shared computer; the choice is kept in localStorage).
// One tab at a time owns a copy (a Web Lock per copy), so two tabs never upload it twice.

const DB_NAME = 'chuan-console';
const STORE = 'kept-files';
const SETTING = 'chuan.console.keepCopies';

/** Largest single file kept (bytes). */
export const KEEP_MAX_FILE = 256 * 1024 * 1024;
/** Most bytes kept for all key pairs together. */
export const KEEP_MAX_TOTAL = 1024 * 1024 * 1024;
/** Copies older than this are dropped (the server expires unfinished uploads too). */
export const KEEP_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

export interface KeptFile {
  id: string;
  accessKey: string;
  bucket: string;
  key: string;
  file: File;
  added: number;
  /** paused by the user: restored paused */
  paused?: boolean;
}

export function keepEnabled(): boolean {
  try {
    return localStorage.getItem(SETTING) !== 'off';
  } catch {
    return false;
  }
}

export function setKeepEnabled(on: boolean): void {
  localStorage.setItem(SETTING, on ? 'on' : 'off');
}

let opened: Promise<IDBDatabase> | null = null;

function db(): Promise<IDBDatabase> {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const s = req.result.createObjectStore(STORE, { keyPath: 'id' });
      s.createIndex('accessKey', 'accessKey');
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  opened.catch(() => (opened = null));
  return opened;
}

function done<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function committed(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new DOMException('aborted', 'AbortError'));
  });
}

// ---- ownership: one tab per copy ------------------------------------------------------------

const held = new Map<string, () => void>();

/**
 * Takes the Web Lock of copy `id` for this tab, held until [drop] or [release] (or the page
 * goes); false when another tab holds it. Without the Locks API (old browsers) always true.
 */
export function claim(id: string): Promise<boolean> {
  if (held.has(id)) return Promise.resolve(true);
  if (!('locks' in navigator)) return Promise.resolve(true);
  return new Promise((resolve) => {
    navigator.locks
      .request(`chuan-keep:${id}`, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(false);
          return undefined;
        }
        resolve(true);
        return new Promise<void>((done) => held.set(id, done));
      })
      .catch(() => resolve(false));
  });
}

/** Lets another tab take copy `id` (this tab no longer works on it). */
export function release(id: string): void {
  held.get(id)?.();
  held.delete(id);
}

// ---- the copies ----------------------------------------------------------------------------

/** Copies are written one after another, so that the total is checked against what is kept. */
let writes: Promise<unknown> = Promise.resolve();

/**
 * Keeps a copy of `file` for its upload, owned by this tab; returns the copy's id, or null when
 * copies are off, the file is over the limits, or the browser refused (storage full, private
 * mode).
 */
export function keep(accessKey: string, bucket: string, key: string, file: File): Promise<string | null> {
  if (!keepEnabled() || file.size > KEEP_MAX_FILE) return Promise.resolve(null);
  const next = writes.then(() => write(accessKey, bucket, key, file));
  writes = next.catch(() => null);
  return next;
}

async function write(accessKey: string, bucket: string, key: string, file: File): Promise<string | null> {
  try {
    await purgeOld();
    const d = await db();
    const all = (await done(d.transaction(STORE).objectStore(STORE).getAll())) as KeptFile[];
    const total = all.reduce((s, r) => s + r.file.size, 0);
    if (total + file.size > KEEP_MAX_TOTAL) return null;
    const rec: KeptFile = { id: crypto.randomUUID(), accessKey, bucket, key, file, added: Date.now() };
    await claim(rec.id);
    const tx = d.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put(rec);
    await committed(tx);
    return rec.id;
  } catch {
    return null;
  }
}

/** Records whether the upload of copy `id` is paused (restored paused after a reload). */
export async function markPaused(id: string, paused: boolean): Promise<void> {
  try {
    const d = await db();
    const tx = d.transaction(STORE, 'readwrite');
    const store = tx.objectStore(STORE);
    const rec = (await done(store.get(id))) as KeptFile | undefined;
    if (rec) store.put({ ...rec, paused });
    await committed(tx);
  } catch {
    // not kept: nothing to mark
  }
}

export async function drop(id: string): Promise<void> {
  try {
    const tx = (await db()).transaction(STORE, 'readwrite');
    tx.objectStore(STORE).delete(id);
    await committed(tx);
  } catch {
    // nothing kept, or storage gone: nothing to drop
  } finally {
    release(id);
  }
}

/** Drops the copies of every key pair older than KEEP_MAX_AGE_MS. */
async function purgeOld(): Promise<void> {
  const d = await db();
  const all = (await done(d.transaction(STORE).objectStore(STORE).getAll())) as KeptFile[];
  const cutoff = Date.now() - KEEP_MAX_AGE_MS;
  await Promise.all(all.filter((r) => r.added < cutoff).map((r) => drop(r.id)));
}

/** The copies kept for `accessKey`, newest first (after dropping those past KEEP_MAX_AGE_MS). */
export async function keptFor(accessKey: string): Promise<KeptFile[]> {
  try {
    await purgeOld();
    const d = await db();
    const index = d.transaction(STORE).objectStore(STORE).index('accessKey');
    const mine = (await done(index.getAll(accessKey))) as KeptFile[];
    return mine.sort((a, b) => b.added - a.added);
  } catch {
    return [];
  }
}

/** Drops every copy kept for `accessKey` (sign-out). */
export async function dropAllFor(accessKey: string): Promise<void> {
  const mine = await keptFor(accessKey);
  await Promise.all(mine.map((r) => drop(r.id)));
}

/** Drops every copy of every key pair (copies turned off). */
export async function dropAll(): Promise<void> {
  try {
    const d = await db();
    const ids = (await done(d.transaction(STORE).objectStore(STORE).getAllKeys())) as string[];
    const tx = d.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).clear();
    await committed(tx);
    ids.forEach(release);
  } catch {
    // nothing kept
  }
}
