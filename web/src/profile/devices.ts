// Profile: my devices and their OwnTracks payload encryption keys (the passphrase set in the
// app), plus a default key for devices without their own. Keys are write-only here: the API
// only says whether one is set. A device can be deleted here with all its data, the MQTT
// credentials made for it and its retained messages.

import { h, replace } from '../lib/dom';
import { del, get, patch } from '../lib/api';
import { confirmDialog } from '../lib/dialog';
import { me } from '../lib/boot';
import { dateTime } from '../lib/format';
import { actionButton, field, input, notice, onSubmit, passwordField, section } from '../lib/ui';
import type { Device } from '../lib/types';

function deviceForm(d: Device, refresh: () => Promise<void>): HTMLElement {
  const status = notice();
  const name = input({ name: 'display_name', value: d.display_name, maxlength: 100 });
  const key = passwordField(`Encryption key for ${d.name}`, { name: 'encryption_key', autocomplete: 'off' });
  const form = h(
    'form',
    { class: 'device-form', 'data-device': d.name },
    h('h3', {}, d.display_name || d.name, ' ', h('span', { class: d.has_encryption_key ? 'badge ok' : 'badge off' }, d.has_encryption_key ? 'key set' : 'no key')),
    h('p', { class: 'muted small' }, h('code', {}, d.topic), ` · last seen ${dateTime(d.last_seen)} · ${d.transport.toUpperCase()}`),
    field('Display name', name),
    key.wrap,
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'primary small' }, 'Save'),
      d.has_encryption_key
        ? actionButton('Remove key', status, async () => {
            await patch(`/api/devices/${d.id}/`, { encryption_key: null });
            await refresh();
          })
        : null,
      actionButton('Delete device', status, async () => {
        const yes = await confirmDialog({
          title: `Delete ${d.display_name || d.name}?`,
          message: `All its locations, transitions, regions and messages, the MQTT credentials made for it and its retained messages are deleted for good. A phone still sending as ${d.topic} creates it again.`,
          confirm: 'Delete device',
          danger: true,
        });
        if (!yes) return;
        await del(`/api/devices/${d.id}/`);
        await refresh();
      }, { class: 'small danger', 'data-action': 'delete-device' }),
    ),
    status.element,
  );
  onSubmit(form, status, async () => {
    const body: Record<string, unknown> = { name: name.value };
    if (key.input.value !== '') body.encryption_key = key.input.value;
    await patch(`/api/devices/${d.id}/`, body);
    await refresh();
  });
  return form;
}

export function devicesSection(): HTMLElement {
  const status = notice();
  const list = h('div', { id: 'device-forms' });
  const refresh = async (): Promise<void> => {
    const devices = (await get<Device[]>('/api/devices/')).filter((d) => d.user === me().username);
    replace(list, devices.length ? devices.map((d) => deviceForm(d, refresh)) : h('p', { class: 'muted' }, 'No devices have reported yet.'));
  };
  const fallback = passwordField('Default encryption key', { name: 'encryption_key', autocomplete: 'off' });
  const fallbackStatus = notice();
  const fallbackForm = h(
    'form',
    { id: 'default-key-form' },
    fallback.wrap,
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit', class: 'small' }, 'Set default key'),
      actionButton('Remove default key', fallbackStatus, async () => {
        await patch('/api/account/', { encryption_key: null });
        fallbackStatus.show('success', 'Default key removed.');
      }),
    ),
    fallbackStatus.element,
  );
  onSubmit(fallbackForm, fallbackStatus, async () => {
    await patch('/api/account/', { encryption_key: fallback.input.value });
    fallbackForm.reset();
    fallbackStatus.show('success', 'Default key set.');
  });
  refresh().catch((e: unknown) => status.show('error', String(e)));
  return section(
    'Devices and encryption',
    h('p', { class: 'muted small' }, 'If the OwnTracks app encrypts its messages (Settings → Encryption key), enter the same key here so the server can read them.'),
    list,
    h('h3', {}, 'For devices without their own key'),
    fallbackForm,
    status.element,
  );
}
