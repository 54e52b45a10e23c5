// Profile: API tokens (for scripts) and device credentials (generated MQTT passwords for
// phones). Both secrets are shown once, right after creation.

import { h, replace } from '../lib/dom';
import { del, get, post } from '../lib/api';
import { confirmDialog } from '../lib/dialog';
import { dateTime } from '../lib/format';
import { actionButton, field, input, notice, onSubmit, secretBox, section, table } from '../lib/ui';
import type { Credential, Token } from '../lib/types';

/** `expires_in_days` from an optional number field. */
function days(value: string): number | undefined {
  return value.trim() === '' ? undefined : Number(value);
}

export function tokensSection(): HTMLElement {
  const status = notice();
  const list = h('div', { id: 'token-list' });
  const shown = h('div');
  const refresh = async (): Promise<void> => {
    const tokens = await get<Token[]>('/api/account/tokens/');
    replace(
      list,
      table(
        ['Label', 'Starts with', 'Created', 'Last used', 'Expires', ''],
        tokens.map((t) => [
          t.label || '—',
          h('code', {}, `${t.prefix}…`),
          dateTime(t.created_at),
          dateTime(t.last_used_at),
          t.expires_at ? dateTime(t.expires_at) : 'never',
          actionButton('Delete', status, async () => {
            const ok = await confirmDialog({ title: 'Delete token?', message: `Scripts using “${t.label || t.prefix}” stop working.`, confirm: 'Delete', danger: true });
            if (!ok) return;
            await del(`/api/account/tokens/${t.id}/`);
            await refresh();
          }, { class: 'small danger', 'aria-label': `Delete token ${t.label || t.prefix}` }),
        ]),
        'No API tokens.',
      ),
    );
  };
  const label = input({ name: 'label', maxlength: 100 });
  const expires = input({ name: 'expires_in_days', type: 'number', min: 1, max: 3650, inputmode: 'numeric' });
  const form = h(
    'form',
    { id: 'token-form' },
    h('div', { class: 'row' }, field('Label', label), field('Expires after (days, optional)', expires), h('button', { type: 'submit', class: 'primary' }, 'Create token')),
  );
  onSubmit(form, status, async () => {
    const token = await post<Token>('/api/account/tokens/', { label: label.value, expires_in_days: days(expires.value) });
    replace(shown, secretBox('New API token', [['Token', token.token ?? '']]), h('p', { class: 'small muted' }, 'Use it as Authorization: Bearer <token>.'));
    form.reset();
    await refresh();
  });
  refresh().catch((e: unknown) => status.show('error', String(e)));
  return section('API tokens', h('p', { class: 'muted small' }, 'For scripts and integrations calling the REST API.'), shown, list, form, status.element);
}

export function credentialsSection(): HTMLElement {
  const status = notice();
  const list = h('div', { id: 'credential-list' });
  const shown = h('div');
  const refresh = async (): Promise<void> => {
    const credentials = await get<Credential[]>('/api/account/credentials/');
    replace(
      list,
      table(
        ['Device', 'Label', 'Created', 'Last used', 'Expires', ''],
        credentials.map((c) => [
          c.device || '—',
          c.label || '—',
          dateTime(c.created_at),
          dateTime(c.last_used_at),
          c.expires_at ? dateTime(c.expires_at) : 'never',
          actionButton('Delete', status, async () => {
            const ok = await confirmDialog({ title: 'Delete credential?', message: `Phones using it (${c.device || c.label || 'unnamed'}) are disconnected and cannot log in with it again.`, confirm: 'Delete', danger: true });
            if (!ok) return;
            await del(`/api/account/credentials/${c.id}/`);
            await refresh();
          }, { class: 'small danger', 'aria-label': `Delete credential ${c.device || c.label}` }),
        ]),
        'No device credentials.',
      ),
    );
  };
  const device = input({ name: 'device', required: true, maxlength: 100, autocapitalize: 'none' });
  const label = input({ name: 'label', maxlength: 100 });
  const expires = input({ name: 'expires_in_days', type: 'number', min: 1, max: 3650, inputmode: 'numeric' });
  const form = h(
    'form',
    { id: 'credential-form' },
    h('div', { class: 'row' }, field('Device', device), field('Label', label), field('Expires after (days, optional)', expires)),
    h('p', {}, h('button', { type: 'submit', class: 'primary' }, 'Generate credential')),
  );
  onSubmit(form, status, async () => {
    const c = await post<Credential>('/api/account/credentials/', { device: device.value.trim(), label: label.value, expires_in_days: days(expires.value) });
    replace(shown, secretBox(`Credential for ${c.device}`, [['Username', c.username], ['Password', c.password ?? '']]));
    form.reset();
    await refresh();
  });
  refresh().catch((e: unknown) => status.show('error', String(e)));
  return section(
    'Device credentials',
    h('p', { class: 'muted small' }, 'A generated MQTT/HTTP password per phone, so a lost phone can be cut off without changing your own password.'),
    shown,
    list,
    form,
    status.element,
  );
}
