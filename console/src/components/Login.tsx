import { Logo } from './Logo';
import { useState } from 'preact/hooks';
import { errorText } from '../format';
import { listBuckets, makeS3 } from '../s3';
import type { Creds } from '../session';

/** Sign-in with a tenant key pair; checked with ListBuckets before it is kept. */
export function Login(props: { onSignIn: (c: Creds) => void }) {
  const [accessKey, setAccessKey] = useState('');
  const [secretKey, setSecretKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');

  const submit = async (e: Event) => {
    e.preventDefault();
    const c = { accessKey: accessKey.trim(), secretKey: secretKey.trim() };
    if (!c.accessKey || !c.secretKey) {
      setError('Enter both the access key and the secret.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      await listBuckets(makeS3(c));
      props.onSignIn(c);
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      setError(status === 403 ? 'The server refused this key pair (403). Check the access key and secret.' : errorText(err));
      setBusy(false);
    }
  };

  return (
    <main id="main" class="login">
      <form class="card login-card" onSubmit={submit} aria-describedby="login-help">
        <h1>
          <Logo />{' '}
          Chuan console
        </h1>
        <p id="login-help" class="hint">
          Sign in with your tenant key pair (the S3 access key and secret). It is kept in this tab only.
        </p>
        <label for="ak">Access key</label>
        <input
          id="ak"
          name="access_key"
          autocomplete="username"
          autocapitalize="off"
          spellcheck={false}
          required
          value={accessKey}
          onInput={(e) => setAccessKey(e.currentTarget.value)}
        />
        <label for="sk">Secret</label>
        <input
          id="sk"
          name="secret_key"
          type="password"
          autocomplete="current-password"
          required
          value={secretKey}
          onInput={(e) => setSecretKey(e.currentTarget.value)}
        />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
