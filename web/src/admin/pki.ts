// Admin panel, PKI tab: the active certificate authority (details, downloads, generating a
// new one after a confirmation that names the one it replaces), server certificates, client
// certificates (issue, revoke, expunge) and the CRL.

import { h, replace } from '../lib/dom';
import { del, get, post } from '../lib/api';
import { confirmDialog } from '../lib/dialog';
import { date, dateTime } from '../lib/format';
import { actionButton, field, input, notice, onSubmit, section, table, toast } from '../lib/ui';
import type { Ca, Certificate, User } from '../lib/types';

type Refresh = () => Promise<void>;

function facts(rows: [string, string | Node][]): HTMLElement {
  return h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function caSection(refreshAll: Refresh): { element: HTMLElement; refresh: Refresh } {
  const status = notice();
  const body = h('div', { id: 'active-ca' });
  let active: Ca | null = null;
  const history = h('div', { id: 'ca-history' });
  const refresh = async (): Promise<void> => {
    // The history holds the active one too (asking /api/admin/ca/ would answer 404 when
    // there is none, an error in the browser's console).
    const all = await get<Ca[]>('/api/admin/ca/history/');
    active = all.find((c) => c.is_active) ?? null;
    replace(
      body,
      active
        ? [
            facts([
              ['Name', active.common_name],
              ['Algorithm', active.algorithm],
              ['Fingerprint (SHA-256)', h('span', { class: 'mono', id: 'ca-fingerprint' }, active.fingerprint)],
              ['Serial', h('span', { class: 'mono' }, active.serial)],
              ['Valid', `${date(active.not_valid_before)} – ${date(active.not_valid_after)}`],
              ['Origin', active.imported ? 'imported' : 'generated here'],
            ]),
            h(
              'p',
              { class: 'actions' },
              h('a', { class: 'button small', href: '/api/admin/ca/download/?format=pem', download: 'mytracks-ca.pem' }, 'Download PEM'),
              h('a', { class: 'button small', href: '/api/admin/ca/download/?format=der', download: 'mytracks-ca.der' }, 'Download DER'),
            ),
          ]
        : h('p', { class: 'muted', id: 'no-ca' }, 'There is no certificate authority yet. Generate one to issue certificates.'),
    );
    const old = all.filter((c) => !c.is_active);
    replace(
      history,
      old.length === 0
        ? null
        : h(
            'details',
            {},
            h('summary', {}, `${old.length} earlier certificate authorit${old.length === 1 ? 'y' : 'ies'}`),
            table(['Name', 'Fingerprint', 'Deactivated'], old.map((c) => [c.common_name, h('span', { class: 'mono small' }, c.fingerprint), dateTime(c.deactivated_at)]), ''),
          ),
    );
  };
  const name = input({ name: 'common_name', value: 'mytracks CA', required: true, maxlength: 64 });
  const algorithm = h(
    'select',
    { name: 'algorithm' },
    h('option', { value: 'ecdsa-p256', selected: true }, 'ECDSA P-256 (recommended)'),
    h('option', { value: 'rsa-2048' }, 'RSA 2048'),
    h('option', { value: 'rsa-3072' }, 'RSA 3072'),
    h('option', { value: 'rsa-4096' }, 'RSA 4096 (slow to generate)'),
  );
  const validity = input({ name: 'validity_days', type: 'number', min: 1, max: 36500, value: 3650, inputmode: 'numeric' });
  const form = h(
    'form',
    { id: 'ca-form' },
    h('h3', {}, 'Generate a new certificate authority'),
    h('div', { class: 'row' }, field('Common name', name), field('Algorithm', algorithm), field('Valid for (days)', validity)),
    h('p', {}, h('button', { type: 'submit', class: 'primary' }, 'Generate CA')),
  );
  onSubmit(form, status, async () => {
    const message = active
      ? h(
          'div',
          {},
          h('p', {}, 'This replaces the active certificate authority ', h('strong', { class: 'replaced-ca' }, `“${active.common_name}”`), ` (fingerprint ${active.fingerprint.slice(0, 23)}…).`),
          h('p', {}, 'Certificates it issued are no longer trusted: phones must import the new CA and new client certificates, and the server needs a new server certificate.'),
        )
      : `Create the certificate authority “${name.value}”?`;
    const ok = await confirmDialog({ title: active ? 'Replace the certificate authority?' : 'Create a certificate authority?', message, confirm: active ? `Replace “${active.common_name}”` : 'Generate CA', danger: Boolean(active) });
    if (!ok) return;
    await post('/api/admin/ca/', { common_name: name.value.trim(), algorithm: algorithm.value, validity_days: Number(validity.value) });
    toast('Certificate authority generated.');
    await refreshAll();
  });
  return { element: section('Certificate authority', status.element, body, history, form), refresh };
}

function serverSection(): { element: HTMLElement; refresh: Refresh } {
  const status = notice();
  const list = h('div', { id: 'server-certificates' });
  const refresh = async (): Promise<void> => {
    const certs = await get<Certificate[]>('/api/admin/server-certificates/');
    replace(
      list,
      table(
        ['Name', 'Also valid for', 'Valid until', 'Status', ''],
        certs.map((c) => [
          c.common_name,
          c.names.join(', ') || '—',
          date(c.not_valid_after),
          h('span', { class: c.is_active ? 'badge ok' : 'badge off' }, c.is_active ? 'active' : 'inactive'),
          c.is_active
            ? actionButton('Deactivate', status, async () => {
                await post(`/api/admin/server-certificates/${c.id}/deactivate/`);
                await refresh();
              })
            : '',
        ]),
        'No server certificates.',
      ),
    );
  };
  const names = input({ name: 'names', placeholder: 'tracks.example.org, 192.0.2.10' });
  const validity = input({ name: 'validity_days', type: 'number', min: 1, max: 3650, value: 825, inputmode: 'numeric' });
  const form = h(
    'form',
    { id: 'server-form' },
    h('div', { class: 'row' }, field('Host names and addresses', names, 'Comma-separated; empty: this machine’s names and addresses.'), field('Valid for (days)', validity)),
    h('p', {}, h('button', { type: 'submit', class: 'primary' }, 'Issue server certificate')),
  );
  onSubmit(form, status, async () => {
    const list = names.value.split(',').map((n) => n.trim()).filter(Boolean);
    await post('/api/admin/server-certificates/', { names: list, validity_days: Number(validity.value) });
    toast('Server certificate issued. The TLS listener presents it from the next handshake (and starts now if it was waiting for one).');
    await refresh();
  });
  return { element: section('Server certificates', status.element, list, form), refresh };
}

function clientSection(): { element: HTMLElement; refresh: Refresh } {
  const status = notice();
  const list = h('div', { id: 'client-certificates' });
  const userSelect = h('select', { name: 'user_id', required: true });
  const refresh = async (): Promise<void> => {
    const [certs, users] = await Promise.all([get<Certificate[]>('/api/admin/certificates/'), get<User[]>('/api/admin/users/')]);
    const chosen = userSelect.value;
    replace(userSelect, users.filter((u) => u.is_active).map((u) => h('option', { value: u.id, selected: String(u.id) === chosen }, u.username)));
    replace(
      list,
      table(
        ['User', 'Serial', 'Valid until', 'Status', ''],
        certs.map((c) => {
          const state = c.revoked ? ['bad', 'revoked'] : c.is_active ? ['ok', 'valid'] : ['off', 'inactive'];
          return [
            c.username ?? c.common_name,
            h('span', { class: 'mono small' }, c.serial_number),
            date(c.not_valid_after),
            h('span', { class: `badge ${state[0]} client-status`, 'data-serial': c.serial_number }, state[1] ?? ''),
            h(
              'div',
              { class: 'actions' },
              !c.revoked
                ? actionButton('Revoke', status, async () => {
                    const ok = await confirmDialog({ title: 'Revoke certificate?', message: `The certificate of ${c.username ?? c.common_name} (serial ${c.serial_number}) is refused from the next TLS handshake and listed in the CRL.`, confirm: 'Revoke', danger: true });
                    if (!ok) return;
                    await post(`/api/admin/certificates/${c.id}/revoke/`);
                    await refresh();
                  }, { class: 'small danger revoke', 'aria-label': `Revoke certificate ${c.serial_number}` })
                : null,
              actionButton('Expunge', status, async () => {
                const ok = await confirmDialog({ title: 'Expunge certificate?', message: `Remove the record of certificate ${c.serial_number} entirely.`, confirm: 'Expunge', danger: true });
                if (!ok) return;
                await del(`/api/admin/certificates/${c.id}/`);
                await refresh();
              }, { class: 'small', 'aria-label': `Expunge certificate ${c.serial_number}` }),
            ),
          ];
        }),
        'No client certificates.',
      ),
    );
  };
  const years = input({ name: 'validity_years', type: 'number', min: 1, max: 5, value: 5, inputmode: 'numeric' });
  const form = h(
    'form',
    { id: 'client-form' },
    h('div', { class: 'row' }, field('User', userSelect), field('Valid for (years)', years), h('button', { type: 'submit', class: 'primary' }, 'Issue client certificate')),
  );
  onSubmit(form, status, async () => {
    await post('/api/admin/certificates/', { user_id: Number(userSelect.value), validity_years: Number(years.value) });
    toast('Client certificate issued.');
    await refresh();
  });
  return { element: section('Client certificates', status.element, list, form), refresh };
}

function crlSection(): HTMLElement {
  const url = `${location.origin}/api/pki/crl/`;
  return section(
    'Certificate revocation list',
    h('p', {}, 'Reissued at every revocation. Public, so devices and other servers can fetch it: ', h('code', {}, url)),
    h(
      'p',
      { class: 'actions' },
      h('a', { class: 'button small', href: '/api/pki/crl/?format=pem', download: 'mytracks-crl.pem', id: 'crl-pem' }, 'Download CRL (PEM)'),
      h('a', { class: 'button small', href: '/api/pki/crl/?format=der', download: 'mytracks.crl' }, 'Download CRL (DER)'),
    ),
  );
}

export function pkiTab(): HTMLElement {
  const server = serverSection();
  const client = clientSection();
  const refreshAll = async (): Promise<void> => {
    await Promise.all([ca.refresh(), server.refresh(), client.refresh()]);
  };
  const ca = caSection(refreshAll);
  refreshAll().catch((e: unknown) => toast(String(e)));
  return h('div', {}, ca.element, server.element, client.element, crlSection());
}
