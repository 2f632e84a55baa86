import { useRef, useState } from 'preact/hooks';
import { filesFromDataTransfer, filesFromInput } from '../dropfiles';
import { formatBytes } from '../format';
import { dropAll, KEEP_MAX_FILE, keepEnabled, setKeepEnabled } from '../keep';
import type { FileToUpload } from '../uploads';

/**
 * Drop files or whole folders here, or use the two buttons (keyboard users, and browsers
 * without folder drops). Everything lands in the current folder, folders keep their tree.
 */
export function DropZone(props: { target: string; onFiles: (files: FileToUpload[]) => void }) {
  const fileInput = useRef<HTMLInputElement>(null);
  const dirInput = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const [reading, setReading] = useState(false);
  const [keepCopies, setKeepCopies] = useState(keepEnabled());

  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    if (!e.dataTransfer) return;
    setReading(true);
    try {
      const files = await filesFromDataTransfer(e.dataTransfer);
      if (files.length) props.onFiles(files);
    } finally {
      setReading(false);
    }
  };

  return (
    <div
      class={over ? 'dropzone over' : 'dropzone'}
      data-testid="dropzone"
      onDragEnter={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragOver={(e) => {
        e.preventDefault();
        if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
      }}
      onDragLeave={(e) => {
        if (e.currentTarget === e.target) setOver(false);
      }}
      onDrop={onDrop}
    >
      <p class="dz-text">
        <span aria-hidden="true">⇪ </span>
        {reading ? 'Reading the dropped folders…' : 'Drop files or folders here to upload them to '}
        {!reading && <strong>{props.target}</strong>}
      </p>
      <div class="dz-buttons">
        <button type="button" onClick={() => fileInput.current?.click()}>
          Choose files
        </button>
        <button type="button" onClick={() => dirInput.current?.click()}>
          Choose folder
        </button>
      </div>
      <div class="dz-keep">
        <label>
          <input
            type="checkbox"
            data-testid="keep-copies"
            aria-describedby="dz-keep-hint"
            checked={keepCopies}
            onChange={(e) => {
              const on = e.currentTarget.checked;
              setKeepEnabled(on);
              setKeepCopies(on);
              if (!on) void dropAll(); // no copy stays in this browser
            }}
          />{' '}
          Resume by itself after a page reload
        </label>
        <span id="dz-keep-hint" class="hint">
          Keeps a copy of each file up to {formatBytes(KEEP_MAX_FILE)} in this browser until it is uploaded; turn
          off on a shared computer.
        </span>
      </div>
      <input
        ref={fileInput}
        type="file"
        multiple
        hidden
        data-testid="file-input"
        aria-label="Files to upload"
        onChange={(e) => {
          const files = filesFromInput(e.currentTarget.files);
          e.currentTarget.value = '';
          if (files.length) props.onFiles(files);
        }}
      />
      <input
        ref={dirInput}
        type="file"
        multiple
        hidden
        data-testid="folder-input"
        aria-label="Folder to upload"
        {...{ webkitdirectory: true }}
        onChange={(e) => {
          const files = filesFromInput(e.currentTarget.files);
          e.currentTarget.value = '';
          if (files.length) props.onFiles(files);
        }}
      />
    </div>
  );
}
