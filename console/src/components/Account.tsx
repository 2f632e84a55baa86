import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  createToken,
  getAccount,
  listTokens,
  revokeToken,
  type Account,
  type NewToken,
  type TokenInfo,
  type TokenOp,
  type TokenType,
} from '../chuan';
import { useApp } from '../context';
import { errorText, formatBytes, formatDate, percent } from '../format';
import { listBuckets } from '../s3';
import { ConfirmDialog, CopyField, Modal } from './Modal';

const OPS: TokenOp[] = ['read', 'write', 'list', 'delete'];
const TTLS: [number, string][] = [
  [3600, '1 hour'],
  [86400, '1 day'],
  [7 * 86400, '7 days'],
  [30 * 86400, '30 days'],
  [365 * 86400, '1 year'],
];
/** Upload tokens live at most 30 days (the server's limit). */
const UPLOAD_TTL_MAX = 30 * 86400;

function apiProblem(e: unknown): string {
  if (e instanceof ApiError && e.status === 404) return 'This server does not offer this yet (HTTP 404).';
  return errorText(e);
}

function quotaLabel(k: string): string {
  return k.replace(/_/g, ' ');
}

function Usage() {
  const { creds } = useApp();
  const [acct, setAcct] = useState<Account | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    getAccount(creds).then(setAcct, (e) => setError(apiProblem(e)));
  }, [creds]);
  if (error)
    return (
      <p class="error" role="alert">
        Usage unavailable: {error}
      </p>
    );
  if (!acct) return <p aria-busy="true">Loading…</p>;
  const limit = acct.quota?.storage_bytes ?? null;
  const others = Object.entries(acct.quota ?? {}).filter(([k]) => k !== 'storage_bytes');
  return (
    <div class="card usage" data-testid="usage">
      <dl>
        <dt>Tenant</dt>
        <dd data-testid="tenant">{acct.tenant}</dd>
        <dt>Stored</dt>
        <dd data-testid="stored-bytes">
          {formatBytes(acct.stored_bytes)} <span class="hint">({acct.stored_bytes.toLocaleString()} bytes)</span>
        </dd>
        <dt>Storage quota</dt>
        <dd>{limit == null ? 'unlimited' : formatBytes(limit)}</dd>
        {others.map(([k, v]) => (
          <Fragment key={k}>
            <dt>{quotaLabel(k)}</dt>
            <dd>{v == null ? 'unlimited' : typeof v === 'number' ? v.toLocaleString() : JSON.stringify(v)}</dd>
          </Fragment>
        ))}
      </dl>
      {limit != null && (
        <div class="meter-row">
          <label for="quota-meter">Quota used</label>
          <meter id="quota-meter" min={0} max={limit} value={acct.stored_bytes} high={limit * 0.9}>
            {percent(acct.stored_bytes, limit)}%
          </meter>
          <span>{percent(acct.stored_bytes, limit)}%</span>
        </div>
      )}
    </div>
  );
}

function NewTokenForm(props: { onCreated: (t: NewToken & { label: string }) => void }) {
  const { creds, s3 } = useApp();
  const [type, setType] = useState<TokenType>('key-pair');
  const [buckets, setBuckets] = useState<string[]>([]);
  const [label, setLabel] = useState('');
  const [bucket, setBucket] = useState('');
  const [prefix, setPrefix] = useState('');
  const [ops, setOps] = useState<TokenOp[]>(['read', 'list']);
  const [ttl, setTtl] = useState(86400);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  useEffect(() => {
    listBuckets(s3).then(
      (b) => {
        const names = b.map((x) => x.name).sort();
        setBuckets(names);
        setBucket((cur) => cur || names[0] || '');
      },
      () => setBuckets([]),
    );
  }, [s3]);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!label.trim()) return setError('Give the token a label.');
    if (!bucket) return setError('Choose a bucket.');
    if (ops.length === 0) return setError('Choose at least one permission.');
    setBusy(true);
    setError('');
    try {
      const ttlSecs = type === 'upload' ? Math.min(ttl, UPLOAD_TTL_MAX) : ttl;
      const sent = type === 'upload' && !ops.includes('write') ? [...ops, 'write' as TokenOp] : ops;
      const t = await createToken(creds, { type, label: label.trim(), bucket, prefix: prefix.trim(), ops: sent, ttl_secs: ttlSecs });
      props.onCreated({ ...t, label: label.trim() });
      setLabel('');
      setPrefix('');
    } catch (err) {
      setError(apiProblem(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card token-form" onSubmit={submit} aria-labelledby="new-token-title">
      <h3 id="new-token-title">New scoped token</h3>
      <fieldset class="token-type">
        <legend>Kind</legend>
        <label class="check">
          <input
            type="radio"
            name="tok-type"
            value="key-pair"
            checked={type === 'key-pair'}
            onChange={() => setType('key-pair')}
          />{' '}
          Key pair — for scripts and S3 clients (access key and secret)
        </label>
        <label class="check">
          <input
            type="radio"
            name="tok-type"
            value="upload"
            checked={type === 'upload'}
            onChange={() => {
              setType('upload');
              setOps(['write']);
              setTtl((t) => Math.min(t, UPLOAD_TTL_MAX));
            }}
          />{' '}
          Upload token — for a web page or an app (Authorization: Bearer on tus and the resumable uploads)
        </label>
      </fieldset>
      <div class="grid2">
        <div class="field">
          <label for="tok-label">Label</label>
          <input id="tok-label" value={label} onInput={(e) => setLabel(e.currentTarget.value)} placeholder="e.g. backup job" />
        </div>
        <div class="field">
          <label for="tok-bucket">Bucket</label>
          <select id="tok-bucket" value={bucket} onChange={(e) => setBucket(e.currentTarget.value)}>
            {buckets.length === 0 && <option value="">(no buckets)</option>}
            {buckets.map((b) => (
              <option key={b} value={b}>
                {b}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="tok-prefix">Key prefix (optional)</label>
          <input id="tok-prefix" value={prefix} onInput={(e) => setPrefix(e.currentTarget.value)} placeholder="e.g. reports/" />
        </div>
        <div class="field">
          <label for="tok-ttl">Expires after</label>
          <select id="tok-ttl" value={String(ttl)} onChange={(e) => setTtl(Number(e.currentTarget.value))}>
            {TTLS.filter(([s]) => type === 'key-pair' || s <= UPLOAD_TTL_MAX).map(([s, l]) => (
              <option key={s} value={String(s)}>
                {l}
              </option>
            ))}
          </select>
        </div>
      </div>
      <fieldset class="ops">
        <legend>Permissions</legend>
        {OPS.map((op) => (
          <label key={op} class="check">
            <input
              type="checkbox"
              checked={ops.includes(op) || (type === 'upload' && op === 'write')}
              disabled={type === 'upload' && op === 'write'}
              onChange={(e) => setOps(e.currentTarget.checked ? [...ops, op] : ops.filter((o) => o !== op))}
            />{' '}
            {op}
            {type === 'upload' && op === 'write' && <span class="hint"> (always, for an upload token)</span>}
          </label>
        ))}
      </fieldset>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <button type="submit" class="primary" disabled={busy}>
        Create token
      </button>
    </form>
  );
}

function Tokens() {
  const { creds, announce } = useApp();
  const [tokens, setTokens] = useState<TokenInfo[] | null>(null);
  const [error, setError] = useState('');
  const [created, setCreated] = useState<(NewToken & { label: string }) | null>(null);
  const [revoking, setRevoking] = useState<TokenInfo | null>(null);
  const [revokeError, setRevokeError] = useState('');
  const [busy, setBusy] = useState(false);

  const load = () => {
    setError('');
    listTokens(creds).then(setTokens, (e) => setError(apiProblem(e)));
  };
  useEffect(load, [creds]);

  return (
    <section aria-labelledby="tokens-title" class="tokens">
      <h2 id="tokens-title">Scoped tokens</h2>
      <p class="hint">
        Key pairs and upload tokens limited to one bucket, an optional prefix and chosen operations, for scripts, web pages,
        apps and other people.
      </p>
      {error && (
        <p class="error" role="alert">
          Tokens unavailable: {error}
        </p>
      )}
      {tokens && tokens.length === 0 && <p class="empty">No tokens yet.</p>}
      {tokens && tokens.length > 0 && (
        <table class="listing tokens-table" aria-label="Scoped tokens">
          <thead>
            <tr>
              <th scope="col">Label</th>
              <th scope="col">Kind</th>
              <th scope="col">Access key or id</th>
              <th scope="col">Scope</th>
              <th scope="col">Expires</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.access_key} data-access-key={t.access_key}>
                <td data-label="Label">{t.label || '—'}</td>
                <td data-label="Kind">{t.type === 'upload' ? 'upload token' : 'key pair'}</td>
                <td data-label="Access key or id">
                  <code>{t.access_key}</code>
                </td>
                <td data-label="Scope">
                  {(t.scope?.buckets ?? []).join(', ') || 'all buckets'}
                  {(t.scope?.prefixes ?? []).filter(Boolean).length ? ` / ${t.scope.prefixes.join(', ')}` : ''}
                  <br />
                  <span class="hint">{(t.scope?.ops ?? []).join(', ')}</span>
                </td>
                <td data-label="Expires">{t.expires_at == null ? 'never' : formatDate(t.expires_at)}</td>
                <td class="actions">
                  <button type="button" class="danger-text" aria-label={`Revoke token ${t.label || t.access_key}`} onClick={() => setRevoking(t)}>
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <NewTokenForm
        onCreated={(t) => {
          setCreated(t);
          load();
        }}
      />
      {created && (
        <Modal title="Token created" onClose={() => setCreated(null)} wide>
          <div class="modal-body" data-testid="new-token">
            <p>
              <strong>Copy the {created.token ? 'token' : 'secret'} now: it is shown only this once.</strong>
            </p>
            {created.token ? (
              <>
                <CopyField label="Upload token" value={created.token} testId="upload-token" />
                <p class="hint">
                  Send it as <code>Authorization: Bearer …</code> to <code>/_chuan/tus/</code>,{' '}
                  <code>/_chuan/resumable/</code> or the instant-upload API (e.g. tus-js-client&rsquo;s{' '}
                  <code>headers</code> option).
                </p>
              </>
            ) : (
              <>
                <CopyField label="Access key" value={created.access_key ?? ''} testId="token-access-key" />
                <CopyField label="Secret" value={created.secret ?? ''} testId="token-secret" />
              </>
            )}
            <p class="hint">{created.expires_at == null ? 'Does not expire.' : `Expires ${formatDate(created.expires_at)}.`}</p>
            <div class="modal-actions">
              <button type="button" class="primary" onClick={() => setCreated(null)}>
                I have copied it
              </button>
            </div>
          </div>
        </Modal>
      )}
      {revoking && (
        <ConfirmDialog
          title="Revoke token"
          message={
            <p>
              Revoke <strong>{revoking.label || revoking.access_key}</strong>? Anything using it stops working at once.
            </p>
          }
          confirmLabel="Revoke"
          danger
          busy={busy}
          error={revokeError}
          onClose={() => {
            setRevoking(null);
            setRevokeError('');
          }}
          onConfirm={async () => {
            setBusy(true);
            try {
              await revokeToken(creds, revoking.access_key);
              announce(`Token ${revoking.label || revoking.access_key} revoked`);
              setRevoking(null);
              load();
            } catch (e) {
              setRevokeError(apiProblem(e));
            } finally {
              setBusy(false);
            }
          }}
        />
      )}
    </section>
  );
}

export function AccountPage() {
  return (
    <section aria-labelledby="account-title">
      <div class="page-head">
        <h1 id="account-title">Account</h1>
      </div>
      <h2>Usage</h2>
      <Usage />
      <Tokens />
    </section>
  );
}
