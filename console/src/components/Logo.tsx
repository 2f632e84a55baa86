/** The console's mark: an arrow into a tray (drawn, so it needs no font). */
export function Logo() {
  return (
    <svg class="logo" viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" focusable="false">
      <rect width="24" height="24" rx="6" fill="currentColor" />
      <path d="M12 5v9M8 9l4-4 4 4M6 15v3h12v-3" fill="none" stroke="var(--accent-fg)" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" />
    </svg>
  );
}
