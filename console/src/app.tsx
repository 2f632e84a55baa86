import { Logo } from './components/Logo';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { AccountPage } from './components/Account';
import { BrowserPage } from './components/Browser';
import { BucketsPage } from './components/Buckets';
import { Login } from './components/Login';
import { UploadPanel } from './components/UploadPanel';
import { AppContext, type Ctx } from './context';
import { useRoute } from './routes';
import { makeS3 } from './s3';
import { clearCreds, loadCreds, saveCreds, type Creds } from './session';
import { dropAllFor } from './keep';
import { UploadManager } from './uploads';

interface Toast {
  id: number;
  text: string;
  kind: 'info' | 'error';
}

function Shell(props: { creds: Creds; onSignOut: () => void }) {
  const { creds } = props;
  const route = useRoute();
  const s3 = useMemo(() => makeS3(creds), [creds]);
  const uploads = useMemo(() => new UploadManager(creds), [creds]);
  const [storedTick, setStoredTick] = useState(0);
  const [toasts, setToasts] = useState<Toast[]>([]);
  const toastId = useRef(0);
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    uploads.onStored = () => setStoredTick((t) => t + 1);
    return () => uploads.dispose();
  }, [uploads]);

  // Move focus to the new page's heading after navigation, for keyboard and screen-reader users.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const h = main.current?.querySelector('h1');
    if (h) {
      h.setAttribute('tabindex', '-1');
      h.focus();
    }
  }, [route]);

  const ctx: Ctx = useMemo(
    () => ({
      creds,
      s3,
      uploads,
      storedTick,
      announce: (text, kind = 'info') => {
        const id = ++toastId.current;
        setToasts((t) => [...t.slice(-2), { id, text, kind }]);
        setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), kind === 'error' ? 8000 : 4000);
      },
    }),
    [creds, s3, uploads, storedTick],
  );

  return (
    <AppContext.Provider value={ctx}>
      <a class="skip-link" href="#main" onClick={(e) => { e.preventDefault(); main.current?.focus(); }}>
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="#/">
          <Logo />
          <span>Chuan</span>
        </a>
        <nav aria-label="Main">
          <ul>
            <li>
              <a href="#/" aria-current={route.page !== 'account' ? 'page' : undefined}>
                Buckets
              </a>
            </li>
            <li>
              <a href="#/account" aria-current={route.page === 'account' ? 'page' : undefined}>
                Account
              </a>
            </li>
          </ul>
        </nav>
        <div class="who">
          <span class="ak" title="Signed in with this access key">
            {creds.accessKey}
          </span>
          <button type="button" onClick={props.onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {route.page === 'buckets' && <BucketsPage />}
        {route.page === 'browse' && <BrowserPage bucket={route.bucket} prefix={route.prefix} />}
        {route.page === 'account' && <AccountPage />}
      </main>
      <UploadPanel />
      <div class="toasts" role="status" aria-live="polite" data-testid="toasts">
        {toasts.map((t) => (
          <div key={t.id} class={`toast ${t.kind}`}>
            {t.text}
          </div>
        ))}
      </div>
    </AppContext.Provider>
  );
}

export function App() {
  const [creds, setCreds] = useState<Creds | null>(loadCreds);
  if (!creds)
    return (
      <Login
        onSignIn={(c) => {
          saveCreds(c);
          setCreds(c);
        }}
      />
    );
  return (
    <Shell
      key={creds.accessKey}
      creds={creds}
      onSignOut={() => {
        void dropAllFor(creds.accessKey); // signing out forgets the files kept for resuming
        clearCreds();
        setCreds(null);
        window.location.hash = '#/';
      }}
    />
  );
}
