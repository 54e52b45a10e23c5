// Profile: my TLS client certificate (for MQTT over TLS without a password): status, issue,
// renew, revoke, and downloads (PEM with the key, or PKCS#12 / .otrp for the apps, protected by
// a passphrase I choose).

import { h, replace } from '../lib/dom';
import { del, get, post, saveBlob, send } from '../lib/api';
import { confirmDialog } from '../lib/dialog';
import { date } from '../lib/format';
import { me } from '../lib/boot';
import { actionButton, notice, passwordField, section } from '../lib/ui';
import type { CertificateStatus } from '../lib/types';

export function certificateSection(): HTMLElement {
  const status = notice();
  const body = h('div', { id: 'certificate' });
  const refresh = async (): Promise<void> => {
    const { certificate: cert, ca } = await get<CertificateStatus>('/api/account/certificate/status/');
    if (!cert) {
      replace(
        body,
        h('p', {}, h('span', { class: 'badge off' }, 'none'), ' You have no valid client certificate.'),
        ca
          ? actionButton('Issue certificate', status, async () => {
              await post('/api/account/certificate/', {});
              await refresh();
            }, { class: 'primary' })
          : h('p', { class: 'muted' }, 'There is no certificate authority yet: an administrator creates one in the Admin Panel (PKI).'),
      );
      return;
    }
    const passphrase = passwordField('Passphrase for the PKCS#12 file', { name: 'passphrase', autocomplete: 'new-password' });
    const pkcs12 = (format: 'p12' | 'otrp'): Promise<void> =>
      (async () => {
        if (passphrase.input.value.length < 4) throw new Error('Choose a passphrase of at least 4 characters; the app asks for it on import.');
        const response = await send('POST', '/api/account/certificate/', { format, passphrase: passphrase.input.value });
        saveBlob(await response.blob(), `${me().username}.${format}`);
      })();
    replace(
      body,
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Status'),
        h('dd', {}, h('span', { class: 'badge ok' }, 'valid')),
        h('dt', {}, 'Common name'),
        h('dd', {}, cert.common_name),
        h('dt', {}, 'Valid'),
        h('dd', {}, `${date(cert.not_valid_before)} – ${date(cert.not_valid_after)}`),
        h('dt', {}, 'Serial'),
        h('dd', { class: 'mono' }, cert.serial_number),
        h('dt', {}, 'Fingerprint'),
        h('dd', { class: 'mono' }, cert.fingerprint),
      ),
      h('h3', {}, 'Download'),
      h('p', {}, h('a', { class: 'button small', href: '/api/account/certificate/?format=pem', download: `${me().username}.pem` }, 'PEM (certificate and key)')),
      passphrase.wrap,
      h(
        'div',
        { class: 'actions' },
        actionButton('PKCS#12 (.p12, Android)', status, () => pkcs12('p12')),
        actionButton('.otrp (OwnTracks iOS)', status, () => pkcs12('otrp')),
      ),
      h('h3', {}, 'Replace or revoke'),
      h(
        'div',
        { class: 'actions' },
        actionButton('Renew', status, async () => {
          await post('/api/account/certificate/', { renew: true });
          await refresh();
        }),
        actionButton('Revoke', status, async () => {
          const ok = await confirmDialog({ title: 'Revoke certificate?', message: 'Devices using it can no longer connect with it.', confirm: 'Revoke', danger: true });
          if (!ok) return;
          await del('/api/account/certificate/');
          await refresh();
        }, { class: 'small danger' }),
      ),
    );
  };
  refresh().catch((e: unknown) => status.show('error', String(e)));
  return section('Client certificate', h('p', { class: 'muted small' }, 'Lets a phone log in to MQTT over TLS with a certificate.'), body, status.element);
}
