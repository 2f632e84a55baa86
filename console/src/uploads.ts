// The upload queue: a few files at a time; each first tries an instant upload (SHA-256 in a
// worker, challenge, proof when asked, commit) and otherwise sends its bytes with tus, which
// resumes after a dropped connection (retries, then the browser's `online` event) and after a
// page reload (its fingerprints in localStorage, found again with findPreviousUploads): by
// itself when a copy of the file was kept in this browser (keep.ts), else once the user picks
// the file again from the "interrupted uploads" list.
import * as tus from 'tus-js-client';
import { instantChallenge, instantCommit } from './chuan';
import { errorText } from './format';
import { possessionProof, sha256File } from './hashing';
import * as kept from './keep';
import { basicAuth, type Creds } from './session';

export const TUS_PATH = '/_chuan/tus/';
export const CHUNK_SIZE = 8 * 1024 * 1024;
export const CONCURRENCY = 3;
/** Smaller files are simply sent: hashing them would cost a probe for a few bytes saved. */
export const INSTANT_MIN_BYTES = 1024 * 1024;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
/** First part of every fingerprint the console stores (tus keeps `tus::<fingerprint>::<n>`). */
const FP_TAG = 'chuan1';

export type UploadState =
  | 'queued'
  | 'hashing'
  | 'proving'
  | 'uploading'
  | 'retrying'
  | 'paused'
  | 'offline'
  | 'done'
  | 'error'
  | 'canceled';

export interface UploadItem {
  readonly id: number;
  readonly file: File;
  readonly bucket: string;
  readonly key: string;
  readonly size: number;
  state: UploadState;
  /** bytes the server has (tus offset) */
  sent: number;
  /** bytes hashed so far */
  hashed: number;
  /** stored by the instant-upload API, nothing sent */
  instant: boolean;
  /** offset at which the last resume continued (null: never resumed) */
  resumedAt: number | null;
  /** brought back from a copy kept in this browser after a page reload */
  restored: boolean;
  message: string;
}

interface Item extends UploadItem {
  upload?: tus.Upload;
  abort?: AbortController;
  sha256?: string;
  instantDone: boolean;
  /** storage key of an interrupted upload the user asked to continue */
  resumeOf?: string;
  prevChecked: boolean;
  /** id of the copy kept in this browser (keep.ts); undefined while it is being written */
  keptId?: string | null;
}

export interface FileToUpload {
  file: File;
  /** path relative to the target folder, e.g. "photos/2024/a.jpg" */
  path: string;
}

export interface PendingUpload {
  storageKey: string;
  bucket: string;
  key: string;
  size: number;
  created: string;
  uploadUrl: string | null;
}

const ACTIVE: UploadState[] = ['hashing', 'proving', 'uploading', 'retrying'];

export function isActive(s: UploadState): boolean {
  return ACTIVE.includes(s);
}

function isAbort(e: unknown): boolean {
  return e instanceof DOMException && e.name === 'AbortError';
}

function fingerprintOf(accessKey: string, bucket: string, key: string, file: File): string {
  return [FP_TAG, accessKey, bucket, key, String(file.size), String(file.lastModified)]
    .map((s) => encodeURIComponent(s))
    .join('|');
}

/** Normalises a relative path from a drop or a folder picker into key segments. */
export function cleanPath(path: string): string {
  return path
    .replace(/\\/g, '/')
    .split('/')
    .filter((s) => s && s !== '.' && s !== '..')
    .join('/');
}

export class UploadManager {
  private items: Item[] = [];
  private listeners = new Set<() => void>();
  private nextId = 1;
  private timer: number | null = null;
  private disposed = false;
  private readonly restoring: Promise<void>;
  /** called once per object stored (tus or instant) */
  onStored?: (bucket: string, key: string) => void;

  constructor(private readonly creds: Creds) {
    window.addEventListener('online', this.onOnline);
    this.restoring = this.restore();
  }

  get endpoint(): string {
    return window.location.origin + TUS_PATH;
  }

  dispose(): void {
    this.disposed = true;
    window.removeEventListener('online', this.onOnline);
    for (const it of this.items) {
      it.abort?.abort();
      // not terminated: the upload stays resumable from its stored fingerprint
      if (it.upload && isActive(it.state)) void it.upload.abort(false).catch(() => {});
      if (it.keptId) kept.release(it.keptId); // another page may continue it
    }
    this.listeners.clear();
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  list(): readonly UploadItem[] {
    return this.items;
  }

  /** Re-renders at most every 150 ms while bytes move; state changes go out at once. */
  private changed(now = false): void {
    if (this.disposed) return;
    if (now) {
      if (this.timer !== null) {
        clearTimeout(this.timer);
        this.timer = null;
      }
      this.listeners.forEach((f) => f());
      return;
    }
    if (this.timer !== null) return;
    this.timer = window.setTimeout(() => {
      this.timer = null;
      this.listeners.forEach((f) => f());
    }, 150);
  }

  add(files: FileToUpload[], bucket: string, prefix: string, resumeOf?: string): void {
    for (const { file, path } of files) {
      const rel = cleanPath(path) || file.name;
      const it = this.push(file, bucket, prefix + rel, { resumeOf });
      void this.keepCopy(it);
    }
    this.changed(true);
    this.pump();
  }

  private push(file: File, bucket: string, key: string, extra: Partial<Item>): Item {
    const it: Item = {
      id: this.nextId++,
      file,
      bucket,
      key,
      size: file.size,
      state: 'queued',
      sent: 0,
      hashed: 0,
      instant: false,
      resumedAt: null,
      restored: false,
      message: '',
      instantDone: false,
      prevChecked: false,
      ...extra,
    };
    this.items.push(it);
    return it;
  }

  /** Keeps a copy of the file for a resume after a reload (when allowed and small enough). */
  private async keepCopy(it: Item): Promise<void> {
    const id = await kept.keep(this.creds.accessKey, it.bucket, it.key, it.file);
    it.keptId = id;
    if (!id) return;
    if (it.state === 'done' || it.state === 'canceled' || it.state === 'error') await kept.drop(id);
    else if (this.disposed) kept.release(id); // still wanted: another page may continue it
  }

  /** Drops the kept copy once the upload has ended. */
  private release(it: Item): void {
    if (it.keptId) void kept.drop(it.keptId);
    it.keptId = null;
  }

  /**
   * Uploads a page before this one left unfinished, from the copies it kept: resumed at once
   * (paused ones stay paused). A copy another tab owns is left to it; asked again a few times,
   * since the page this one replaced may still be letting go of its copies.
   */
  private async restore(): Promise<void> {
    if (!kept.keepEnabled()) return;
    let copies = await kept.keptFor(this.creds.accessKey); // newest first
    for (let attempt = 0; copies.length > 0 && attempt < 4 && !this.disposed; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 500));
      const owned: kept.KeptFile[] = [];
      const others: kept.KeptFile[] = [];
      for (const c of copies) ((await kept.claim(c.id)) ? owned : others).push(c);
      if (this.disposed) {
        owned.forEach((c) => kept.release(c.id));
        return;
      }
      for (const c of owned) {
        // The key is being uploaded here already (picked again, or a newer copy): this copy
        // is superseded, as the later upload of a key wins.
        const taken = this.items.some((i) => i.state !== 'canceled' && i.bucket === c.bucket && i.key === c.key);
        if (taken) {
          void kept.drop(c.id);
          continue;
        }
        this.push(c.file, c.bucket, c.key, {
          keptId: c.id,
          restored: true,
          state: c.paused ? 'paused' : 'queued',
          message: 'continued after the page reload',
        });
      }
      if (owned.length) {
        this.changed(true);
        this.pump();
      }
      copies = others;
    }
  }

  private find(id: number): Item | undefined {
    return this.items.find((i) => i.id === id);
  }

  private pump(): void {
    if (this.disposed) return;
    let active = this.items.filter((i) => isActive(i.state)).length;
    for (const it of this.items) {
      if (active >= CONCURRENCY) break;
      if (it.state !== 'queued') continue;
      active++;
      it.state = it.upload || it.instantDone || it.size < INSTANT_MIN_BYTES ? 'uploading' : 'hashing';
      it.abort = new AbortController();
      void this.run(it);
    }
    this.changed(true);
  }

  pause(id: number): void {
    const it = this.find(id);
    if (!it || !['queued', 'hashing', 'proving', 'uploading', 'retrying', 'offline', 'error'].includes(it.state)) return;
    const wasActive = isActive(it.state);
    it.state = 'paused';
    it.message = '';
    it.abort?.abort();
    if (it.keptId) void kept.markPaused(it.keptId, true);
    if (wasActive && it.upload) void it.upload.abort(false).catch(() => {});
    this.changed(true);
    this.pump();
  }

  resume(id: number): void {
    const it = this.find(id);
    if (!it || !['paused', 'error', 'offline'].includes(it.state)) return;
    it.state = 'queued';
    it.message = '';
    if (it.keptId) void kept.markPaused(it.keptId, false);
    this.pump();
  }

  pauseAll(): void {
    for (const it of this.items) this.pause(it.id);
  }

  resumeAll(): void {
    for (const it of this.items) if (it.state === 'paused') this.resume(it.id);
  }

  cancel(id: number): void {
    const it = this.find(id);
    if (!it || it.state === 'done' || it.state === 'canceled') return;
    it.state = 'canceled';
    it.message = '';
    it.abort?.abort();
    this.release(it);
    if (it.upload) {
      const up = it.upload;
      // terminate on the server when it supports it; forget the fingerprint either way
      void up
        .abort(true)
        .catch(() => up.abort(false))
        .catch(() => {})
        .finally(() => this.forgetStored(it));
    }
    this.changed(true);
    this.pump();
  }

  clearFinished(): void {
    this.items = this.items.filter((i) => i.state !== 'done' && i.state !== 'canceled');
    this.changed(true);
  }

  private onOnline = (): void => {
    let any = false;
    for (const it of this.items) {
      if (it.state === 'offline') {
        it.state = 'queued';
        it.message = 'network back: resuming';
        any = true;
      }
    }
    if (any) this.pump();
  };

  private stillRunning(it: Item): boolean {
    return !this.disposed && isActive(it.state) && !it.abort?.signal.aborted;
  }

  private async run(it: Item): Promise<void> {
    if (!it.instantDone && !it.upload) {
      if (it.size >= INSTANT_MIN_BYTES && !(await this.hasStored(it))) {
        try {
          if (await this.tryInstant(it)) {
            it.state = 'done';
            it.instant = true;
            it.sent = it.size;
            it.message = 'instant: already stored, nothing sent';
            this.release(it);
            this.changed(true);
            this.onStored?.(it.bucket, it.key);
            this.pump();
            return;
          }
        } catch (e) {
          if (isAbort(e) || !this.stillRunning(it)) return;
          it.message = `instant upload unavailable (${errorText(e)}), sending the file`;
        }
        if (!this.stillRunning(it)) return;
      }
      it.instantDone = true;
    }
    await this.runTus(it);
  }

  /** true when the instant-upload API stored the object */
  private async tryInstant(it: Item): Promise<boolean> {
    const signal = (it.abort ??= new AbortController()).signal;
    it.state = 'hashing';
    this.changed(true);
    if (!it.sha256) {
      it.sha256 = await sha256File(
        it.file,
        (d) => {
          it.hashed = d;
          this.changed();
        },
        signal,
      );
    }
    if (!this.stillRunning(it)) return false;
    const c = await instantChallenge(this.creds, {
      bucket: it.bucket,
      key: it.key,
      size: it.size,
      sha256: it.sha256,
      content_type: it.file.type || undefined,
    });
    if (!this.stillRunning(it)) return false;
    let proof: string | undefined;
    if (c.proof_required) {
      it.state = 'proving';
      this.changed(true);
      proof = await possessionProof(it.file, c.nonce, c.ranges, signal);
      if (!this.stillRunning(it)) return false;
    }
    const r = await instantCommit(this.creds, c.challenge_id, proof);
    return r.hit === true;
  }

  private async hasStored(it: Item): Promise<boolean> {
    try {
      const fp = fingerprintOf(this.creds.accessKey, it.bucket, it.key, it.file);
      const found = await tus.defaultOptions.urlStorage.findUploadsByFingerprint(fp);
      return found.length > 0;
    } catch {
      return false;
    }
  }

  private forgetStored(it: Item): void {
    const fp = fingerprintOf(this.creds.accessKey, it.bucket, it.key, it.file);
    void tus.defaultOptions.urlStorage
      .findUploadsByFingerprint(fp)
      .then((list) => Promise.all(list.map((p) => tus.defaultOptions.urlStorage.removeUpload(p.urlStorageKey))))
      .catch(() => {});
  }

  private makeTus(it: Item): tus.Upload {
    const accessKey = this.creds.accessKey;
    return new tus.Upload(it.file, {
      endpoint: this.endpoint,
      chunkSize: CHUNK_SIZE,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      storeFingerprintForResuming: true,
      headers: { Authorization: basicAuth(this.creds) },
      metadata: {
        bucket: it.bucket,
        key: it.key,
        filetype: it.file.type || 'application/octet-stream',
      },
      fingerprint: (file) => Promise.resolve(fingerprintOf(accessKey, it.bucket, it.key, file as File)),
      onProgress: (sent) => {
        if (it.state === 'retrying') {
          it.state = 'uploading';
          it.message = '';
          this.changed(true);
        }
        it.sent = sent;
        this.changed();
      },
      onAfterResponse: (req, res) => {
        if (req.getMethod() === 'HEAD' && res.getStatus() >= 200 && res.getStatus() < 300) {
          const offset = Number(res.getHeader('Upload-Offset'));
          if (Number.isFinite(offset)) {
            it.resumedAt = offset;
            it.sent = offset;
            if (it.state === 'retrying') it.state = 'uploading';
            it.message = offset > 0 ? '' : it.message;
            this.changed(true);
          }
        }
      },
      onShouldRetry: (err, attempt) => {
        if (!navigator.onLine || !isActive(it.state)) return false;
        const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
        const retry = status === 0 || status >= 500 || status === 409 || status === 423 || status === 429;
        if (retry) {
          it.state = 'retrying';
          it.message = `connection problem, retry ${attempt + 1} of ${RETRY_DELAYS.length}`;
          this.changed(true);
        }
        return retry;
      },
      onError: (err) => {
        if (!isActive(it.state)) return; // paused or canceled meanwhile
        if (!navigator.onLine) {
          it.state = 'offline';
          it.message = 'offline: resumes when the network is back';
        } else {
          // Refused for good (or out of retries): the copy is not kept for another page;
          // Retry here still has the file.
          it.state = 'error';
          this.release(it);
          const res = (err as tus.DetailedError).originalResponse;
          const body = res ? res.getBody() : '';
          it.message = res ? `HTTP ${res.getStatus()}${body ? ': ' + body.slice(0, 160) : ''}` : err.message;
        }
        this.changed(true);
        this.pump();
      },
      onSuccess: () => {
        it.state = 'done';
        it.sent = it.size;
        this.release(it);
        this.changed(true);
        this.onStored?.(it.bucket, it.key);
        this.pump();
      },
    });
  }

  private async runTus(it: Item): Promise<void> {
    it.state = 'uploading';
    this.changed(true);
    if (!it.upload) it.upload = this.makeTus(it);
    const up = it.upload;
    if (!it.prevChecked) {
      it.prevChecked = true;
      try {
        const prev = await up.findPreviousUploads();
        if (prev.length) {
          prev.sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)));
          up.resumeFromPreviousUpload(prev[0]);
        } else if (it.resumeOf) {
          it.message = 'the file changed since the interrupted upload: starting over';
          await tus.defaultOptions.urlStorage.removeUpload(it.resumeOf).catch(() => {});
        }
      } catch {
        // no stored state: a new upload
      }
      if (!this.stillRunning(it)) return;
    }
    up.start();
  }

  /** Interrupted uploads of this key pair left in localStorage by an earlier page. */
  async pending(): Promise<PendingUpload[]> {
    await this.restoring; // uploads continued from kept copies are not "interrupted"
    const mine = `tus::${FP_TAG}|${encodeURIComponent(this.creds.accessKey)}|`;
    const active = new Set(
      this.items.filter((i) => i.state !== 'canceled').map((i) => `${i.bucket}\n${i.key}`),
    );
    let all: tus.PreviousUpload[] = [];
    try {
      all = await tus.defaultOptions.urlStorage.findAllUploads();
    } catch {
      return [];
    }
    return all
      .filter((p) => p.urlStorageKey.startsWith(mine) && p.metadata && p.metadata.bucket && p.metadata.key)
      .filter((p) => !active.has(`${p.metadata.bucket}\n${p.metadata.key}`))
      .map((p) => ({
        storageKey: p.urlStorageKey,
        bucket: p.metadata.bucket,
        key: p.metadata.key,
        size: p.size ?? 0,
        created: p.creationTime,
        uploadUrl: p.uploadUrl,
      }));
  }

  /** Continue an interrupted upload with the file picked again (same size required). */
  resumePending(p: PendingUpload, file: File): string | null {
    if (file.size !== p.size) return `“${file.name}” has ${file.size} bytes, the interrupted upload ${p.size}`;
    const slash = p.key.lastIndexOf('/');
    this.add([{ file, path: p.key.slice(slash + 1) }], p.bucket, p.key.slice(0, slash + 1), p.storageKey);
    return null;
  }

  async discardPending(p: PendingUpload): Promise<void> {
    if (p.uploadUrl) {
      await tus.Upload.terminate(p.uploadUrl, { headers: { Authorization: basicAuth(this.creds) } }).catch(() => {});
    }
    await tus.defaultOptions.urlStorage.removeUpload(p.storageKey).catch(() => {});
  }
}
