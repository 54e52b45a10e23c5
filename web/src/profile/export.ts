// Profile: download everything the account holds (one ZIP, streamed by the server), to keep
// or to take to another server (`mytracks import recorder` reads its Recorder folder back).

import { h } from '../lib/dom';
import { section } from '../lib/ui';

export function exportSection(): HTMLElement {
  return section(
    'Your data',
    h(
      'p',
      { class: 'muted small' },
      'One ZIP file with your profile, devices, shares, card, every location (GeoJSON, GPX and CSV), ' +
        'transitions, regions, messages, IoT devices and their telemetry, and an OwnTracks Recorder ' +
        'folder that mytracks or a Recorder can import. Passwords, tokens and keys are never in it.',
    ),
    h('p', {}, h('a', { class: 'button primary', href: '/api/account/export/', download: '', id: 'export-account' }, 'Download all my data')),
  );
}
