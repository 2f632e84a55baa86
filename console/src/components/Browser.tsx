import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useApp } from '../context';
import { baseName, errorText, formatBytes, formatDate } from '../format';
import { browseHref } from '../routes';
import { listFolder, presignGet, type FileEntry } from '../s3';
import type { FileToUpload } from '../uploads';
import { DropZone } from './DropZone';
import { FileIcon, FolderIcon } from './Icons';
import { DeleteDialog, NewFolderDialog, RenameDialog, ShareDialog, type Target } from './ObjectDialogs';

type SortBy = 'name' | 'size' | 'modified';
type Dialog =
  | { kind: 'delete'; target: Target }
  | { kind: 'rename'; target: Target }
  | { kind: 'share'; key: string }
  | { kind: 'newfolder' }
  | null;

/** Listing page size; sessionStorage "chuan.console.pageSize" overrides it (tests use a small one). */
function pageSize(): number {
  const v = Number(sessionStorage.getItem('chuan.console.pageSize'));
  return Number.isInteger(v) && v > 0 && v <= 1000 ? v : 200;
}

function Breadcrumbs(props: { bucket: string; prefix: string }) {
  const parts = props.prefix.split('/').filter(Boolean);
  return (
    <nav aria-label="Breadcrumb" class="breadcrumbs">
      <ol>
        <li>
          <a href="#/">Buckets</a>
        </li>
        <li>
          {parts.length === 0 ? (
            <span aria-current="page">{props.bucket}</span>
          ) : (
            <a href={browseHref(props.bucket)}>{props.bucket}</a>
          )}
        </li>
        {parts.map((p, i) => {
          const last = i === parts.length - 1;
          const href = browseHref(props.bucket, parts.slice(0, i + 1).join('/') + '/');
          return <li key={href}>{last ? <span aria-current="page">{p}</span> : <a href={href}>{p}</a>}</li>;
        })}
      </ol>
    </nav>
  );
}

export function BrowserPage(props: { bucket: string; prefix: string }) {
  const { bucket, prefix } = props;
  const { s3, uploads, announce, storedTick } = useApp();
  const [folders, setFolders] = useState<string[]>([]);
  const [files, setFiles] = useState<FileEntry[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState('');
  const [filter, setFilter] = useState('');
  const [sortBy, setSortBy] = useState<SortBy>('name');
  const [desc, setDesc] = useState(false);
  const [dialog, setDialog] = useState<Dialog>(null);
  const generation = useRef(0);
  // which folder the rows belong to: rows of the previous folder are never shown under this one
  const [shownFor, setShownFor] = useState('');
  const here = `${bucket}\n${prefix}`;
  const stale = shownFor !== here;

  const load = async (token?: string, all = false) => {
    const gen = token ? generation.current : ++generation.current;
    setLoading(true);
    setError('');
    try {
      let t = token;
      let first = !token;
      do {
        const page = await listFolder(s3, bucket, prefix, t, pageSize());
        if (gen !== generation.current) return;
        if (first) {
          setFolders(page.folders);
          setFiles(page.files);
          setShownFor(`${bucket}\n${prefix}`);
          first = false;
        } else {
          setFolders((f) => [...f, ...page.folders]);
          setFiles((f) => [...f, ...page.files]);
        }
        t = page.next;
        setNext(page.next);
      } while (all && t);
    } catch (e) {
      if (gen === generation.current) {
        setError(errorText(e));
        setShownFor(`${bucket}\n${prefix}`);
      }
    } finally {
      if (gen === generation.current) setLoading(false);
    }
  };

  useEffect(() => {
    setFilter('');
    setFolders([]);
    setFiles([]);
    setNext(undefined);
    void load();
  }, [s3, bucket, prefix]);

  // uploads finishing: reload the first page, at most twice a second
  const firstTick = useRef(storedTick);
  useEffect(() => {
    if (storedTick === firstTick.current) return;
    const t = setTimeout(() => void load(), 500);
    return () => clearTimeout(t);
  }, [storedTick]);

  const rows = useMemo(() => {
    if (stale) return { folders: [] as string[], files: [] as FileEntry[] };
    const q = filter.trim().toLowerCase();
    const match = (name: string) => !q || name.toLowerCase().includes(q);
    const dir = desc ? -1 : 1;
    const byName = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true, sensitivity: 'base' });
    const fs = folders.filter((p) => match(baseName(p))).sort((a, b) => dir * byName(baseName(a), baseName(b)));
    const fl = files.filter((f) => match(baseName(f.key)));
    fl.sort((a, b) => {
      let c = 0;
      if (sortBy === 'size') c = a.size - b.size;
      else if (sortBy === 'modified') c = (a.modified?.getTime() ?? 0) - (b.modified?.getTime() ?? 0);
      if (c === 0) c = byName(baseName(a.key), baseName(b.key));
      return dir * c;
    });
    return { folders: fs, files: fl };
  }, [folders, files, filter, sortBy, desc, stale]);

  const download = async (key: string) => {
    try {
      const url = await presignGet(s3, bucket, key, 900, baseName(key));
      const a = document.createElement('a');
      a.href = url;
      a.rel = 'noopener';
      a.download = baseName(key);
      document.body.appendChild(a);
      a.click();
      a.remove();
      announce(`Downloading ${baseName(key)}`);
    } catch (e) {
      announce(`Download failed: ${errorText(e)}`, 'error');
    }
  };

  const onFiles = (list: FileToUpload[]) => {
    uploads.add(list, bucket, prefix);
    announce(`${list.length} file${list.length === 1 ? '' : 's'} queued for upload`);
  };

  const closeAndReload = () => {
    setDialog(null);
    void load();
  };

  const shown = rows.folders.length + rows.files.length;
  const total = stale ? 0 : folders.length + files.length;
  const busy = loading || stale;
  const ariaSort = (col: SortBy) => (sortBy === col ? (desc ? 'descending' : 'ascending') : undefined);
  const folderLabel = prefix ? baseName(prefix) : bucket;

  return (
    <section aria-labelledby="browser-title" class="browser">
      <Breadcrumbs bucket={bucket} prefix={prefix} />
      <div class="page-head">
        <h1 id="browser-title">{folderLabel}</h1>
        <div class="head-actions">
          <button type="button" onClick={() => setDialog({ kind: 'newfolder' })}>
            New folder
          </button>
          <button type="button" onClick={() => void load()}>
            Refresh
          </button>
        </div>
      </div>

      <DropZone target={prefix ? `${bucket}/${prefix}` : bucket} onFiles={onFiles} />

      <div class="toolbar" role="group" aria-label="Filter and sort">
        <div class="field grow">
          <label for="filter">Search in this folder</label>
          <input
            id="filter"
            type="search"
            placeholder="Name contains…"
            value={filter}
            onInput={(e) => setFilter(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="sort">Sort by</label>
          <select id="sort" value={sortBy} onChange={(e) => setSortBy(e.currentTarget.value as SortBy)}>
            <option value="name">Name</option>
            <option value="size">Size</option>
            <option value="modified">Last modified</option>
          </select>
        </div>
        <button
          type="button"
          class="sort-dir"
          aria-pressed={desc}
          aria-label={desc ? 'Sort descending (press for ascending)' : 'Sort ascending (press for descending)'}
          onClick={() => setDesc(!desc)}
        >
          {desc ? '↓ Desc' : '↑ Asc'}
        </button>
      </div>

      {error && (
        <p class="error" role="alert">
          Could not list this folder: {error}
        </p>
      )}
      <p class="count" aria-live="polite">
        {busy
          ? 'Loading…'
          : filter
            ? `${shown} of ${total} loaded item${total === 1 ? '' : 's'} match “${filter}”${next ? ' (more not loaded yet)' : ''}`
            : `${total} item${total === 1 ? '' : 's'}${next ? ' loaded, more available' : ''}`}
      </p>

      <table class="listing" aria-label={`Contents of ${folderLabel}`} aria-busy={busy ? 'true' : undefined}>
        <thead>
          <tr>
            <th scope="col" aria-sort={ariaSort('name')}>
              Name
            </th>
            <th scope="col" class="num" aria-sort={ariaSort('size')}>
              Size
            </th>
            <th scope="col" aria-sort={ariaSort('modified')}>
              Last modified
            </th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {prefix && !filter && (
            <tr class="up">
              <td colSpan={4}>
                <a href={browseHref(bucket, prefix.split('/').slice(0, -2).join('/') + (prefix.split('/').length > 2 ? '/' : ''))}>
                  <span aria-hidden="true">↰ </span>Parent folder
                </a>
              </td>
            </tr>
          )}
          {rows.folders.map((p) => {
            const name = baseName(p);
            return (
              <tr key={'d:' + p} class="folder" data-name={name}>
                <td class="name" data-label="Name">
                  <a href={browseHref(bucket, p)}>
                    <FolderIcon />
                    {name}/
                  </a>
                </td>
                <td class="num" data-label="Size">
                  —
                </td>
                <td data-label="Modified">—</td>
                <td class="actions">
                  <button type="button" aria-label={`Rename folder ${name}`} onClick={() => setDialog({ kind: 'rename', target: { type: 'folder', prefix: p } })}>
                    Rename
                  </button>
                  <button
                    type="button"
                    class="danger-text"
                    aria-label={`Delete folder ${name}`}
                    onClick={() => setDialog({ kind: 'delete', target: { type: 'folder', prefix: p } })}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            );
          })}
          {rows.files.map((f) => {
            const name = baseName(f.key);
            return (
              <tr key={'f:' + f.key} class="file" data-name={name}>
                <td class="name" data-label="Name">
                  <FileIcon />
                  <span class="fname">{name}</span>
                </td>
                <td class="num" data-label="Size">
                  {formatBytes(f.size)}
                </td>
                <td data-label="Modified">{formatDate(f.modified)}</td>
                <td class="actions">
                  <button type="button" aria-label={`Download ${name}`} onClick={() => void download(f.key)}>
                    Download
                  </button>
                  <button type="button" aria-label={`Share ${name}`} onClick={() => setDialog({ kind: 'share', key: f.key })}>
                    Share
                  </button>
                  <button type="button" aria-label={`Rename ${name}`} onClick={() => setDialog({ kind: 'rename', target: { type: 'file', key: f.key } })}>
                    Rename
                  </button>
                  <button
                    type="button"
                    class="danger-text"
                    aria-label={`Delete ${name}`}
                    onClick={() => setDialog({ kind: 'delete', target: { type: 'file', key: f.key } })}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {!busy && total === 0 && !error && <p class="empty">This folder is empty: drop files above to upload.</p>}
      {next && !stale && (
        <div class="more">
          <button type="button" disabled={loading} onClick={() => void load(next)}>
            Load more
          </button>
          <button type="button" disabled={loading} onClick={() => void load(next, true)}>
            Load all
          </button>
        </div>
      )}

      {dialog?.kind === 'delete' && (
        <DeleteDialog bucket={bucket} target={dialog.target} onClose={() => setDialog(null)} onDone={closeAndReload} />
      )}
      {dialog?.kind === 'rename' && (
        <RenameDialog bucket={bucket} target={dialog.target} onClose={() => setDialog(null)} onDone={closeAndReload} />
      )}
      {dialog?.kind === 'share' && <ShareDialog bucket={bucket} objectKey={dialog.key} onClose={() => setDialog(null)} />}
      {dialog?.kind === 'newfolder' && (
        <NewFolderDialog bucket={bucket} prefix={prefix} onClose={() => setDialog(null)} onDone={closeAndReload} />
      )}
    </section>
  );
}
