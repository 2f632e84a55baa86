// Copies of queued files kept in this browser (IndexedDB), so that an upload interrupted by a
// page reload resumes by itself: a page cannot reopen a file the user picked before the reload,
// but a Blob stored in IndexedDB comes back with its name, size, type and lastModified — and so
// with the same tus fingerprint, which finds the upload on the server and its offset.
//
// Bounded: files up to KEEP_MAX_FILE, KEEP_MAX_TOTAL for all copies; bigger files fall back to
// the "interrupted uploads" list (pick the file again). A copy is dropped when its upload ends
// (done or canceled), after KEEP_MAX_AGE_MS, and for the key pair at sign-out. The user can turn
// copies off (a shared computer); the choice is remembered in localStorage.

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

/**
 * Keeps a copy of `file` for its upload; returns the copy's id, or null when copies are off,
 * the file is over the limits, or the browser refused (storage full, private mode).
 */
export async function keep(accessKey: string, bucket: string, key: string, file: File): Promise<string | null> {
  if (!keepEnabled() || file.size > KEEP_MAX_FILE) return null;
  try {
    const d = await db();
    const all = (await done(d.transaction(STORE).objectStore(STORE).getAll())) as KeptFile[];
    const total = all.reduce((s, r) => s + r.file.size, 0);
    if (total + file.size > KEEP_MAX_TOTAL) return null;
    const rec: KeptFile = { id: crypto.randomUUID(), accessKey, bucket, key, file, added: Date.now() };
    const tx = d.transaction(STORE, 'readwrite');
    tx.objectStore(STORE).put(rec);
    await committed(tx);
    return rec.id;
  } catch {
    return null;
  }
}

export async function drop(id: string): Promise<void> {
  try {
    const tx = (await db()).transaction(STORE, 'readwrite');
    tx.objectStore(STORE).delete(id);
    await committed(tx);
  } catch {
    // nothing kept, or storage gone: nothing to drop
  }
}

/** The copies kept for `accessKey`, oldest first; drops those past KEEP_MAX_AGE_MS. */
export async function keptFor(accessKey: string): Promise<KeptFile[]> {
  try {
    const d = await db();
    const index = d.transaction(STORE).objectStore(STORE).index('accessKey');
    const mine = (await done(index.getAll(accessKey))) as KeptFile[];
    const cutoff = Date.now() - KEEP_MAX_AGE_MS;
    const old = mine.filter((r) => r.added < cutoff);
    await Promise.all(old.map((r) => drop(r.id)));
    return mine.filter((r) => r.added >= cutoff).sort((a, b) => a.added - b.added);
  } catch {
    return [];
  }
}

/** Drops every copy kept for `accessKey` (sign-out). */
export async function dropAllFor(accessKey: string): Promise<void> {
  const mine = await keptFor(accessKey);
  await Promise.all(mine.map((r) => drop(r.id)));
}
