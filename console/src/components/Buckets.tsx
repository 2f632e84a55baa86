import { useEffect, useState } from 'preact/hooks';
import { useApp } from '../context';
import { BucketIcon } from './Icons';
import { errorText, formatDate } from '../format';
import { browseHref } from '../routes';
import { createBucket, listBuckets, type BucketInfo } from '../s3';

const NAME_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function BucketsPage() {
  const { s3, announce } = useApp();
  const [buckets, setBuckets] = useState<BucketInfo[] | null>(null);
  const [error, setError] = useState('');
  const [name, setName] = useState('');
  const [createError, setCreateError] = useState('');
  const [busy, setBusy] = useState(false);

  const load = async () => {
    setError('');
    try {
      const list = await listBuckets(s3);
      list.sort((a, b) => a.name.localeCompare(b.name));
      setBuckets(list);
    } catch (e) {
      setError(errorText(e));
    }
  };
  useEffect(() => {
    void load();
  }, [s3]);

  const create = async (e: Event) => {
    e.preventDefault();
    const n = name.trim();
    if (!NAME_RE.test(n)) {
      setCreateError('Bucket names are 3–63 characters: lower-case letters, digits, dots and hyphens.');
      return;
    }
    setBusy(true);
    setCreateError('');
    try {
      await createBucket(s3, n);
      setName('');
      announce(`Bucket ${n} created`);
      await load();
    } catch (err) {
      setCreateError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="buckets-title">
      <div class="page-head">
        <h1 id="buckets-title">Buckets</h1>
        <button type="button" onClick={() => void load()}>
          Refresh
        </button>
      </div>
      <form class="inline-form card" onSubmit={create}>
        <label for="new-bucket">New bucket name</label>
        <div class="row">
          <input
            id="new-bucket"
            value={name}
            autocapitalize="off"
            spellcheck={false}
            placeholder="e.g. photos"
            aria-invalid={createError ? 'true' : undefined}
            aria-describedby={createError ? 'new-bucket-error' : undefined}
            onInput={(e) => setName(e.currentTarget.value)}
          />
          <button type="submit" class="primary" disabled={busy}>
            Create bucket
          </button>
        </div>
        {createError && (
          <p id="new-bucket-error" class="error" role="alert">
            {createError}
          </p>
        )}
      </form>
      {error && (
        <p class="error" role="alert">
          Could not list buckets: {error}
        </p>
      )}
      {buckets === null && !error && <p aria-busy="true">Loading…</p>}
      {buckets && buckets.length === 0 && <p class="empty">No buckets yet: create one above.</p>}
      {buckets && buckets.length > 0 && (
        <ul class="bucket-list" aria-label="Your buckets">
          {buckets.map((b) => (
            <li key={b.name}>
              <a href={browseHref(b.name)} class="bucket-link">
                <BucketIcon />
                <span class="name">{b.name}</span>
              </a>
              <span class="meta">created {formatDate(b.created)}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
