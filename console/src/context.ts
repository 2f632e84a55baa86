import type { S3Client } from '@aws-sdk/client-s3';
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Creds } from './session';
import type { UploadManager } from './uploads';

export interface Ctx {
  creds: Creds;
  s3: S3Client;
  uploads: UploadManager;
  /** a short message for the polite status region (and the visible toast) */
  announce: (msg: string, kind?: 'info' | 'error') => void;
  /** bumped whenever an upload stores an object: listings reload */
  storedTick: number;
}

export const AppContext = createContext<Ctx | null>(null);

export function useApp(): Ctx {
  const c = useContext(AppContext);
  if (!c) throw new Error('AppContext missing');
  return c;
}
