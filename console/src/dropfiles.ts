// Files of a drop, folders included (DataTransferItem.webkitGetAsEntry, walked recursively),
// and of the file / folder pickers (File.webkitRelativePath).
import type { FileToUpload } from './uploads';

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

function readBatch(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function walk(entry: FileSystemEntry, out: FileToUpload[]): Promise<void> {
  if (entry.isFile) {
    const file = await fileOf(entry as FileSystemFileEntry);
    out.push({ file, path: entry.fullPath.replace(/^\/+/, '') || file.name });
  } else if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    // readEntries answers in batches (about 100 in Chromium) until an empty one
    for (;;) {
      const batch = await readBatch(reader);
      if (batch.length === 0) break;
      for (const child of batch) await walk(child, out);
    }
  }
}

export async function filesFromDataTransfer(dt: DataTransfer): Promise<FileToUpload[]> {
  // Entries must be taken synchronously, before the first await: the list is emptied after the event.
  const entries: FileSystemEntry[] = [];
  const loose: FileToUpload[] = [];
  const items = dt.items ? Array.from(dt.items) : [];
  for (const item of items) {
    if (item.kind !== 'file') continue;
    const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else {
      const f = item.getAsFile();
      if (f) loose.push({ file: f, path: f.name });
    }
  }
  if (items.length === 0 && dt.files) {
    for (const f of Array.from(dt.files)) loose.push({ file: f, path: f.name });
  }
  const out: FileToUpload[] = [...loose];
  for (const e of entries) await walk(e, out);
  return out;
}

export function filesFromInput(list: FileList | null): FileToUpload[] {
  if (!list) return [];
  return Array.from(list).map((f) => ({ file: f, path: f.webkitRelativePath || f.name }));
}
