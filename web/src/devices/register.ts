// Registering a device: id, group, description (admins: an owner too). The answer's MQTT
// password is shown once, with where to connect and which topics to use.

import { h, replace, uid } from '../lib/dom';
import { post } from '../lib/api';
import { field, input, notice, secretBox } from '../lib/ui';
import { connectionHints, type Connection } from './connect';
import { fieldErrors } from './util';
import type { RegisteredDevice } from './types';

export interface RegisterForm {
  element: HTMLElement;
  /** Offers these groups (and, for admins, owners) in the fields' suggestions. */
  suggest(groups: string[], owners?: string[]): void;
  focus(): void;
}

export function registerForm(options: {
  admin: boolean;
  connection: () => Connection;
  registered: (device: RegisteredDevice) => Promise<void>;
}): RegisterForm {
  const status = notice();
  const result = h('div', { id: 'registered' });
  const groupsId = uid('groups');
  const ownersId = uid('owners');
  const groupList = h('datalist', { id: groupsId });
  const ownerList = h('datalist', { id: ownersId });
  const deviceId = input({ name: 'device_id', required: true, maxlength: 64, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', placeholder: 'greenhouse-1' });
  const group = input({ name: 'group', maxlength: 64, list: groupsId, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
  const description = input({ name: 'description', maxlength: 200 });
  const owner = options.admin ? input({ name: 'owner', list: ownersId, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' }) : null;
  const fields: Record<string, HTMLInputElement> = { device_id: deviceId, group, description };
  if (owner) fields.owner = owner;
  const errors = fieldErrors(fields, status);
  const button = h('button', { type: 'submit', class: 'primary' }, 'Register device');
  const form = h(
    'form',
    { id: 'register-form', novalidate: true },
    h('div', { class: 'row' }, field('Device ID', deviceId, 'Its MQTT username and topic level: letters, digits, - _ .'), field('Group (optional)', group, 'For commands to many devices at once')),
    field('Description (optional)', description),
    owner ? field('Owner (optional)', owner, 'A username; empty: you') : null,
    groupList,
    ownerList,
    h('div', { class: 'actions' }, button),
    status.element,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    errors.clear();
    status.clear();
    const id = deviceId.value.trim();
    if (!id) {
      errors.mark('device_id', 'Enter an id for the device.');
      return;
    }
    const body: Record<string, unknown> = { device_id: id, group: group.value.trim() || null, description: description.value.trim() };
    if (owner && owner.value.trim()) body.owner = owner.value.trim();
    button.disabled = true;
    post<RegisteredDevice>('/api/iot/devices/', body)
      .then(async (device) => {
        form.reset();
        const done = h('button', { type: 'button', class: 'small' }, 'Done, hide the password');
        done.addEventListener('click', () => {
          replace(result);
          deviceId.focus();
        });
        replace(
          result,
          h(
            'div',
            { class: 'registered' },
            secretBox(`MQTT login for ${device.device_id}`, [['Username', device.username], ['Password', device.password]]),
            h('h3', {}, 'Connect the device'),
            connectionHints(options.connection(), device.device_id, device.group, device.password),
            h('div', { class: 'actions' }, done),
          ),
        );
        await options.registered(device);
      })
      .catch((error: unknown) => errors.show(error))
      .finally(() => (button.disabled = false));
  });
  return {
    element: h('div', {}, form, result),
    suggest(groups, owners = []) {
      replace(groupList, groups.map((g) => h('option', { value: g })));
      replace(ownerList, owners.map((o) => h('option', { value: o })));
    },
    focus: () => deviceId.focus(),
  };
}
