// Hash routes: #/ (buckets), #/b/<bucket>/<folder/segments/> (browser), #/account.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'buckets' }
  | { page: 'browse'; bucket: string; prefix: string }
  | { page: 'account' };

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function parseRoute(hash: string): Route {
  const h = hash.replace(/^#/, '');
  if (h === '/account') return { page: 'account' };
  const m = /^\/b\/([^/]+)\/?(.*)$/.exec(h);
  if (m) {
    const bucket = decode(m[1]);
    const prefix = m[2] ? m[2].split('/').map(decode).join('/') : '';
    return { page: 'browse', bucket, prefix: prefix && !prefix.endsWith('/') ? prefix + '/' : prefix };
  }
  return { page: 'buckets' };
}

export function browseHref(bucket: string, prefix = ''): string {
  return `#/b/${encodeURIComponent(bucket)}/${prefix.split('/').map(encodeURIComponent).join('/')}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
