// Chuan's own JSON endpoints (/_chuan/v1/...), HTTP Basic with the tenant's key pair.
import { basicAuth, type Creds } from './session';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function call<T>(creds: Creds, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Authorization: basicAuth(creds), Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await r.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!r.ok) {
    const j = (json ?? {}) as { error?: string; message?: string };
    const code = j.error || `HTTP ${r.status}`;
    throw new ApiError(r.status, code, j.message || (typeof j.error === 'string' ? j.error : text.slice(0, 200)) || code);
  }
  return json as T;
}

// ---- instant upload -------------------------------------------------------------------------

export interface Challenge {
  challenge_id: string;
  proof_required: boolean;
  /** hex; the HMAC key */
  nonce: string;
  /** [offset, length] pairs of the file whose concatenation the HMAC covers */
  ranges: [number, number][];
  expires_at: number;
}

export type CommitResult =
  | { hit: true; bucket: string; key: string; etag: string; size: number }
  | { hit: false };

export function instantChallenge(
  creds: Creds,
  req: { bucket: string; key: string; size: number; sha256: string; content_type?: string },
): Promise<Challenge> {
  return call(creds, 'POST', '/_chuan/v1/instant/challenge', req);
}

export function instantCommit(creds: Creds, challengeId: string, proof?: string): Promise<CommitResult> {
  const body: { challenge_id: string; proof?: string } = { challenge_id: challengeId };
  if (proof !== undefined) body.proof = proof;
  return call(creds, 'POST', '/_chuan/v1/instant/commit', body);
}

// ---- account and scoped tokens ----------------------------------------------------------------

export interface Account {
  tenant: string;
  stored_bytes: number;
  quota: ({ storage_bytes: number | null } & Record<string, unknown>) | null;
}

export type TokenOp = 'read' | 'write' | 'list' | 'delete';

export type TokenType = 'key-pair' | 'upload';

export interface TokenInfo {
  type?: TokenType;
  /** the access key of a key pair, the id of an upload token */
  access_key: string;
  label: string;
  scope: { buckets: string[]; prefixes: string[]; ops: string[] };
  expires_at: number | null;
}

/** A new key pair ({access_key, secret}) or upload token ({token, id}); secrets are shown once. */
export interface NewToken {
  access_key?: string;
  secret?: string;
  token?: string;
  id?: string;
  expires_at: number | null;
}

export function getAccount(creds: Creds): Promise<Account> {
  return call(creds, 'GET', '/_chuan/v1/account');
}

export function listTokens(creds: Creds): Promise<TokenInfo[]> {
  return call(creds, 'GET', '/_chuan/v1/tokens');
}

export function createToken(
  creds: Creds,
  req: { type: TokenType; label: string; bucket: string; prefix: string; ops: TokenOp[]; ttl_secs: number },
): Promise<NewToken> {
  return call(creds, 'POST', '/_chuan/v1/tokens', req);
}

export async function revokeToken(creds: Creds, accessKey: string): Promise<void> {
  await call(creds, 'DELETE', `/_chuan/v1/tokens/${encodeURIComponent(accessKey)}`);
}
