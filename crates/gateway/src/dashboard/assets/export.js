// Audit Logs page — export. The browser cannot put an Authorization header on a plain link, so
// the file is fetched with the header and handed to the user through a Blob and an
// <a download>. Fine for a demo, but the whole file is held in memory: a production deployment
// would hand out a short-lived signed download URL (or use a cookie session) so that the
// browser streams the export straight to disk.

import { api, ApiError, handleError } from './api.js';
import { formatBytes, h, toast } from './dom.js';
import { apiFilterParams } from './filters.js';
import { ORG, ORG_PATH } from './state.js';

export async function exportLog(format, button) {
  if (button.getAttribute('aria-busy') === 'true') return;
  const label = button.querySelector('.btn-text');
  const original = label.textContent;
  button.setAttribute('aria-busy', 'true');
  button.disabled = true;
  label.textContent = 'Preparing…';
  try {
    const params = apiFilterParams();
    params.set('format', format);
    const response = await api(`${ORG_PATH}/events/export`, params);
    let blob;
    try {
      blob = await response.blob();
    } catch {
      // The export is streamed: a failure after the first byte cuts the body short.
      throw new ApiError(response.status, 'export_interrupted', 'The export was interrupted before it was complete, so no file was saved. Try again.');
    }
    const name = fileNameOf(response.headers.get('Content-Disposition')) || `audit-log_${ORG}.${format}`;
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    toast(`Exported ${name} (${formatBytes(blob.size)})`);
  } catch (error) {
    handleError(error, 'export');
  } finally {
    button.removeAttribute('aria-busy');
    button.disabled = false;
    label.textContent = original;
  }
}

function fileNameOf(disposition) {
  const match = /filename="?([^";]+)"?/i.exec(disposition || '');
  // Only a plain file name: nothing that could name a path.
  return match ? match[1].replace(/[^\w.-]/g, '_') : null;
}
