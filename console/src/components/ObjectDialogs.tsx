import { useState } from 'preact/hooks';
import { useApp } from '../context';
import { baseName, errorText, formatDate } from '../format';
import {
  copyObject,
  createFolderMarker,
  deleteKeys,
  deleteObject,
  listAllKeys,
  movePrefix,
  objectExists,
  presignGet,
} from '../s3';
import { ConfirmDialog, CopyField, Modal } from './Modal';

/** A file (by key) or a folder (by prefix, ending in "/"). */
export type Target = { type: 'file'; key: string } | { type: 'folder'; prefix: string };

export function targetName(t: Target): string {
  return baseName(t.type === 'file' ? t.key : t.prefix);
}

export function DeleteDialog(props: { bucket: string; target: Target; onClose: () => void; onDone: () => void }) {
  const { s3, announce } = useApp();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const name = targetName(props.target);
  const run = async () => {
    setBusy(true);
    setError('');
    try {
      if (props.target.type === 'file') {
        await deleteObject(s3, props.bucket, props.target.key);
        announce(`Deleted ${name}`);
      } else {
        const keys = await listAllKeys(s3, props.bucket, props.target.prefix);
        await deleteKeys(s3, props.bucket, keys);
        announce(`Deleted folder ${name} (${keys.length} object${keys.length === 1 ? '' : 's'})`);
      }
      props.onDone();
    } catch (e) {
      setError(errorText(e));
      setBusy(false);
    }
  };
  return (
    <ConfirmDialog
      title={props.target.type === 'file' ? 'Delete file' : 'Delete folder'}
      message={
        props.target.type === 'file' ? (
          <p>
            Delete <strong>{name}</strong>? This cannot be undone.
          </p>
        ) : (
          <p>
            Delete the folder <strong>{name}</strong> and <em>everything in it</em>? This cannot be undone.
          </p>
        )
      }
      confirmLabel="Delete"
      danger
      busy={busy}
      error={error}
      onConfirm={run}
      onClose={props.onClose}
    />
  );
}

export function RenameDialog(props: { bucket: string; target: Target; onClose: () => void; onDone: () => void }) {
  const { s3, announce } = useApp();
  const t = props.target;
  const from = t.type === 'file' ? t.key : t.prefix;
  const [value, setValue] = useState(t.type === 'file' ? t.key : t.prefix.slice(0, -1));
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState('');
  const [error, setError] = useState('');

  const submit = async (e: Event) => {
    e.preventDefault();
    const cleaned = value.trim().replace(/^\/+/, '').replace(/\/+$/, '');
    if (!cleaned) {
      setError('Enter a name.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      if (t.type === 'file') {
        if (cleaned === t.key) return props.onClose();
        if (await objectExists(s3, props.bucket, cleaned)) throw new Error(`“${cleaned}” already exists`);
        await copyObject(s3, props.bucket, t.key, cleaned);
        await deleteObject(s3, props.bucket, t.key);
        announce(`Moved ${baseName(t.key)} to ${cleaned}`);
      } else {
        const to = cleaned + '/';
        if (to === t.prefix) return props.onClose();
        if (to.startsWith(t.prefix)) throw new Error('A folder cannot be moved into itself.');
        const n = await movePrefix(s3, props.bucket, t.prefix, to, (d, total) => setProgress(`${d} of ${total} objects copied`));
        announce(`Moved folder ${baseName(t.prefix)} to ${to} (${n} object${n === 1 ? '' : 's'})`);
      }
      props.onDone();
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <Modal title={t.type === 'file' ? 'Rename or move file' : 'Rename or move folder'} onClose={props.onClose}>
      <form onSubmit={submit} class="modal-body">
        <p class="hint">
          Current path: <code>{from}</code>. Enter a new name or a path from the bucket's root (slashes make folders).
        </p>
        <label for="rename-input">New path</label>
        <input
          id="rename-input"
          value={value}
          autofocus
          autocapitalize="off"
          spellcheck={false}
          onInput={(e) => setValue(e.currentTarget.value)}
        />
        {progress && (
          <p class="hint" role="status">
            {progress}
          </p>
        )}
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <div class="modal-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Moving…' : 'Rename'}
          </button>
        </div>
      </form>
    </Modal>
  );
}

const EXPIRIES: [number, string][] = [
  [3600, '1 hour'],
  [86400, '1 day'],
  [7 * 86400, '7 days'],
];

export function ShareDialog(props: { bucket: string; objectKey: string; onClose: () => void }) {
  const { s3 } = useApp();
  const [expires, setExpires] = useState(3600);
  const [link, setLink] = useState<{ url: string; until: number } | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const url = await presignGet(s3, props.bucket, props.objectKey, expires);
      setLink({ url, until: Date.now() + expires * 1000 });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title={`Share “${baseName(props.objectKey)}”`} onClose={props.onClose} wide>
      <form class="modal-body" onSubmit={create}>
        <p class="hint">Anyone with the link can download this file until the link expires.</p>
        <label for="share-expiry">Link expires after</label>
        <div class="row">
          <select
            id="share-expiry"
            value={String(expires)}
            onChange={(e) => {
              setExpires(Number(e.currentTarget.value));
              setLink(null);
            }}
          >
            {EXPIRIES.map(([secs, label]) => (
              <option key={secs} value={String(secs)}>
                {label}
              </option>
            ))}
          </select>
          <button type="submit" class="primary" disabled={busy}>
            Create link
          </button>
        </div>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        {link && (
          <div class="share-result">
            <CopyField label="Share link" value={link.url} testId="share-url" />
            <p class="hint">Valid until {formatDate(link.until)}.</p>
          </div>
        )}
        <div class="modal-actions">
          <button type="button" onClick={props.onClose}>
            Done
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function NewFolderDialog(props: { bucket: string; prefix: string; onClose: () => void; onDone: (prefix: string) => void }) {
  const { s3, announce } = useApp();
  const [name, setName] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const n = name.trim().replace(/^\/+|\/+$/g, '');
    if (!n) {
      setError('Enter a folder name.');
      return;
    }
    setBusy(true);
    try {
      const p = props.prefix + n + '/';
      await createFolderMarker(s3, props.bucket, p);
      announce(`Folder ${n} created`);
      props.onDone(p);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };
  return (
    <Modal title="New folder" onClose={props.onClose}>
      <form class="modal-body" onSubmit={submit}>
        <label for="folder-name">Folder name</label>
        <input id="folder-name" value={name} autofocus onInput={(e) => setName(e.currentTarget.value)} />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <div class="modal-actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Create
          </button>
        </div>
      </form>
    </Modal>
  );
}
