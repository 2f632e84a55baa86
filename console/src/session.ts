// The signed-in key pair lives in sessionStorage only: it is gone when the tab closes, and it
// is never written to localStorage (where tus keeps its resumable-upload fingerprints).

export interface Creds {
  accessKey: string;
  secretKey: string;
}

const STORAGE_KEY = 'chuan.console.creds';

export function loadCreds(): Creds | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const v = JSON.parse(raw);
    if (v && typeof v.accessKey === 'string' && typeof v.secretKey === 'string' && v.accessKey && v.secretKey) {
      return { accessKey: v.accessKey, secretKey: v.secretKey };
    }
  } catch {
    // unreadable: treat as signed out
  }
  return null;
}

export function saveCreds(c: Creds): void {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c));
}

export function clearCreds(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** base64 of UTF-8 text (btoa alone only takes Latin-1). */
export function base64Utf8(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin);
}

/** `Authorization` value for Chuan's own endpoints (tus, /_chuan/v1): HTTP Basic. */
export function basicAuth(c: Creds): string {
  return 'Basic ' + base64Utf8(`${c.accessKey}:${c.secretKey}`);
}
