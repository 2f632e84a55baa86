import { defineConfig } from 'vite';

// The server embeds dist/ and serves it at /_chuan/console/, on the same origin as the S3 API,
// the tus endpoint and the /_chuan/v1 JSON API; every asset URL is relative to that base.
export default defineConfig({
  base: '/_chuan/console/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 700,
  },
  worker: { format: 'es' },
});
