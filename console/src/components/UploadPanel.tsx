import { useEffect, useRef, useState } from 'preact/hooks';
import { useApp } from '../context';
import { formatBytes, formatDate, percent } from '../format';
import { filesFromInput } from '../dropfiles';
import { isActive, type PendingUpload, type UploadItem, type UploadState } from '../uploads';

const STATE_TEXT: Record<UploadState, string> = {
  queued: 'Queued',
  hashing: 'Checking (hashing)',
  proving: 'Proving possession',
  uploading: 'Uploading',
  retrying: 'Reconnecting',
  paused: 'Paused',
  offline: 'Offline — waiting',
  done: 'Done',
  error: 'Failed',
  canceled: 'Canceled',
};

/** Problems first, then what is moving, waiting, and finally what is done. */
const RANK: Record<UploadState, number> = {
  error: 0,
  offline: 0,
  retrying: 0,
  uploading: 1,
  hashing: 1,
  proving: 1,
  paused: 2,
  queued: 3,
  done: 4,
  canceled: 5,
};

function useUploadList(): readonly UploadItem[] {
  const { uploads } = useApp();
  const [, setTick] = useState(0);
  useEffect(() => uploads.subscribe(() => setTick((t) => t + 1)), [uploads]);
  return uploads.list();
}

function rowProgress(it: UploadItem): number {
  if (it.state === 'done') return 100;
  if (it.state === 'hashing') return percent(it.hashed, it.size);
  return percent(it.sent, it.size);
}

/** Pending uploads of an earlier page: pick the same files again to continue them. */
function PendingList(props: { pending: PendingUpload[]; refresh: () => void }) {
  const { uploads, announce } = useApp();
  const { pending, refresh } = props;
  const [error, setError] = useState('');
  const picker = useRef<HTMLInputElement>(null);
  const pickFor = useRef<PendingUpload | null>(null);

  if (pending.length === 0) return null;

  const onPicked = (list: FileList | null) => {
    const files = filesFromInput(list).map((f) => f.file);
    const targets = pickFor.current ? [pickFor.current] : pending;
    const problems: string[] = [];
    let resumed = 0;
    for (const f of files) {
      const name = f.name;
      const p = targets.find((t) => t.key.split('/').pop() === name && t.size === f.size) ?? (pickFor.current && files.length === 1 ? pickFor.current : undefined);
      if (!p) {
        problems.push(`no interrupted upload matches “${name}” (${f.size} bytes)`);
        continue;
      }
      const err = uploads.resumePending(p, f);
      if (err) problems.push(err);
      else resumed++;
    }
    setError(problems.join('; '));
    if (resumed) announce(`Resuming ${resumed} interrupted upload${resumed === 1 ? '' : 's'}`);
    refresh();
  };

  return (
    <div class="pending" role="region" aria-labelledby="pending-title">
      <h3 id="pending-title">Interrupted uploads</h3>
      <p class="hint">
        These uploads were interrupted (page reloaded or closed). Browsers cannot reopen a file by themselves: choose the
        same file again and the upload continues where it stopped.
      </p>
      <ul>
        {pending.map((p) => (
          <li key={p.storageKey} class="pending-row" data-key={p.key}>
            <span class="pkey">
              {p.bucket}/{p.key}
            </span>
            <span class="meta">
              {formatBytes(p.size)}, started {formatDate(Date.parse(p.created))}
            </span>
            <span class="row-buttons">
              <button
                type="button"
                aria-label={`Resume ${p.key}: choose the file`}
                onClick={() => {
                  pickFor.current = p;
                  picker.current?.click();
                }}
              >
                Resume…
              </button>
              <button
                type="button"
                class="danger-text"
                aria-label={`Discard interrupted upload ${p.key}`}
                onClick={async () => {
                  await uploads.discardPending(p);
                  refresh();
                }}
              >
                Discard
              </button>
            </span>
          </li>
        ))}
      </ul>
      {pending.length > 1 && (
        <button
          type="button"
          onClick={() => {
            pickFor.current = null;
            picker.current?.click();
          }}
        >
          Resume several… (choose the files)
        </button>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <input
        ref={picker}
        type="file"
        multiple
        hidden
        data-testid="resume-input"
        aria-label="Files to resume"
        onChange={(e) => {
          onPicked(e.currentTarget.files);
          e.currentTarget.value = '';
        }}
      />
    </div>
  );
}

export function UploadPanel() {
  const { uploads } = useApp();
  const items = useUploadList();
  const [collapsed, setCollapsed] = useState(false);
  const [liveText, setLiveText] = useState('');
  const [pending, setPending] = useState<PendingUpload[]>([]);
  const [version, setVersion] = useState(0);
  const itemCount = items.length;
  useEffect(() => {
    let live = true;
    void uploads.pending().then((p) => live && setPending(p));
    return () => {
      live = false;
    };
  }, [uploads, version, itemCount]);

  const visible = items.filter((i) => i.state !== 'canceled');
  const ordered = [...visible].sort((a, b) => RANK[a.state] - RANK[b.state] || a.id - b.id);
  const totalBytes = visible.reduce((s, i) => s + i.size, 0);
  const doneBytes = visible.reduce((s, i) => s + (i.state === 'done' ? i.size : Math.min(i.sent, i.size)), 0);
  const doneCount = visible.filter((i) => i.state === 'done').length;
  const failed = visible.filter((i) => i.state === 'error').length;
  const active = visible.filter((i) => isActive(i.state) || i.state === 'queued').length;
  const paused = visible.filter((i) => i.state === 'paused').length;
  const overall = percent(doneBytes, totalBytes);

  // The live region speaks in steps (every 25 %, each finished file, failures), not every byte.
  const step = Math.floor(overall / 25);
  useEffect(() => {
    if (visible.length === 0) return setLiveText('');
    const parts = [`${doneCount} of ${visible.length} uploads finished, ${overall}%`];
    if (failed) parts.push(`${failed} failed`);
    if (paused) parts.push(`${paused} paused`);
    setLiveText(parts.join(', '));
  }, [doneCount, visible.length, failed, paused, step]);

  if (visible.length === 0 && pending.length === 0) return null;

  return (
    <aside class={collapsed ? 'uploads collapsed' : 'uploads'} aria-labelledby="uploads-title">
      <div class="uploads-head">
        <h2 id="uploads-title">Uploads</h2>
        <span class="overall-text" data-testid="overall-text">
          {visible.length ? `${doneCount}/${visible.length} · ${formatBytes(doneBytes)} of ${formatBytes(totalBytes)}` : 'none yet'}
        </span>
        <button type="button" aria-expanded={!collapsed} aria-controls="uploads-body" onClick={() => setCollapsed(!collapsed)}>
          {collapsed ? 'Show' : 'Hide'}
        </button>
      </div>
      <div class="visually-hidden" aria-live="polite" role="status" data-testid="upload-live">
        {liveText}
      </div>
      <div id="uploads-body" hidden={collapsed}>
        {visible.length > 0 && (
          <div class="overall">
            <label for="overall-progress" class="visually-hidden">
              Overall upload progress
            </label>
            <progress id="overall-progress" max={100} value={overall}>
              {overall}%
            </progress>
            <span>{overall}%</span>
            <div class="row-buttons">
              {active > 0 && (
                <button type="button" onClick={() => uploads.pauseAll()}>
                  Pause all
                </button>
              )}
              {paused > 0 && (
                <button type="button" onClick={() => uploads.resumeAll()}>
                  Resume all
                </button>
              )}
              {doneCount > 0 && (
                <button type="button" onClick={() => uploads.clearFinished()}>
                  Clear finished
                </button>
              )}
            </div>
          </div>
        )}
        <PendingList pending={pending} refresh={() => setVersion((v) => v + 1)} />
        <ul class="upload-list">
          {ordered.map((it) => {
            const pct = rowProgress(it);
            const name = it.key.split('/').pop() || it.key;
            return (
              <li key={it.id} class={`upload-row state-${it.state}`} data-key={it.key} data-state={it.state} data-instant={it.instant ? 'true' : 'false'} data-restored={it.restored ? 'true' : 'false'}>
                <div class="upload-line">
                  <span class="ukey" title={`${it.bucket}/${it.key}`}>
                    {it.key}
                  </span>
                  <span class="usize">{formatBytes(it.size)}</span>
                </div>
                <div class="upload-line">
                  <progress max={100} value={pct} aria-label={`${name}: ${STATE_TEXT[it.state]} ${pct}%`} />
                  <span class="ustate">
                    {it.instant ? 'Done — instant' : STATE_TEXT[it.state]}
                    {it.state === 'uploading' || it.state === 'hashing' ? ` ${pct}%` : ''}
                  </span>
                  <span class="row-buttons">
                    {(isActive(it.state) || it.state === 'queued') && (
                      <button type="button" aria-label={`Pause ${name}`} onClick={() => uploads.pause(it.id)}>
                        Pause
                      </button>
                    )}
                    {(it.state === 'paused' || it.state === 'offline') && (
                      <button type="button" aria-label={`Resume ${name}`} onClick={() => uploads.resume(it.id)}>
                        Resume
                      </button>
                    )}
                    {it.state === 'error' && (
                      <button type="button" aria-label={`Retry ${name}`} onClick={() => uploads.resume(it.id)}>
                        Retry
                      </button>
                    )}
                    {it.state !== 'done' && (
                      <button type="button" class="danger-text" aria-label={`Cancel ${name}`} onClick={() => uploads.cancel(it.id)}>
                        Cancel
                      </button>
                    )}
                  </span>
                </div>
                {(it.message || (it.resumedAt !== null && it.resumedAt > 0)) && (
                  <div class="umsg">
                    {it.message}
                    {it.resumedAt !== null && it.resumedAt > 0 && (
                      <span class="resumed" data-resumed-at={it.resumedAt}>
                        {' '}
                        (resumed at {formatBytes(it.resumedAt)})
                      </span>
                    )}
                  </div>
                )}
              </li>
            );
          })}
        </ul>
      </div>
    </aside>
  );
}
