// About & Setup: a configuration for one device, as a QR code (`owntracks:///config?inline=`,
// scanned by the app) and as a `.otrc` file. Optionally with a freshly generated device
// credential, whose password then appears here once and nowhere else.

import { h, replace } from '../lib/dom';
import { get, post, saveBlob } from '../lib/api';
import { me } from '../lib/boot';
import { checkbox, field, input, notice, onSubmit, section } from '../lib/ui';
import { qrCanvas } from './qr';
import type { Device, DeviceConfigAnswer, Setup } from '../lib/types';

function modeChoice(value: string, label: string, port: number | null, checked: boolean): HTMLElement {
  const radio = h('input', { type: 'radio', name: 'mode', value, id: `mode-${value}`, checked: checked && port !== null, disabled: port === null && value !== 'http' });
  return h('span', { class: 'choice' }, radio, h('label', { for: radio.id }, label));
}

export function provisionSection(setup: Setup): HTMLElement {
  const status = notice();
  const result = h('div', { id: 'provision-result', 'aria-live': 'polite' });
  const devices = h('datalist', { id: 'own-devices' });
  get<Device[]>('/api/devices/')
    .then((list) => list.filter((d) => d.user === me().username).forEach((d) => devices.append(h('option', { value: d.name }))))
    .catch(() => undefined);
  const device = input({ name: 'device', value: 'phone', required: true, list: 'own-devices', maxlength: 100, autocapitalize: 'none' });
  const tid = input({ name: 'tid', maxlength: 2, autocapitalize: 'characters' });
  const credential = checkbox('Generate a new device credential for this phone (otherwise the app asks for your password)', { name: 'credential', checked: true });
  const p = setup.ports;
  const modes = h(
    'fieldset',
    { class: 'modes' },
    h('legend', {}, 'Connection'),
    modeChoice('mqtt', `MQTT${p.mqtt === null ? ' (off)' : ''}`, p.mqtt, true),
    modeChoice('mqtt-tls', `MQTT with TLS${p.mqtt_tls === null ? ' (off)' : ''}`, p.mqtt_tls, false),
    modeChoice('http', 'HTTP', p.http, p.mqtt === null),
  );
  const form = h(
    'form',
    { id: 'provision-form' },
    h('div', { class: 'row' }, field('Device name', device, 'The last part of the topic owntracks/<user>/<device>.'), field('Tracker ID (optional)', tid)),
    modes,
    credential.wrap,
    status.element,
    h('button', { type: 'submit', class: 'primary' }, 'Create configuration'),
    devices,
  );
  onSubmit(form, status, async () => {
    const mode = form.querySelector<HTMLInputElement>('input[name=mode]:checked')?.value ?? 'http';
    const answer = await post<DeviceConfigAnswer>('/api/setup/device-config/', {
      device: device.value.trim(),
      mode,
      tid: tid.value.trim() || undefined,
      credential: credential.box.checked,
    });
    const text = JSON.stringify(answer.configuration, null, 2);
    replace(
      result,
      answer.credential
        ? h('div', { class: 'secret', role: 'alert' }, h('strong', {}, 'Contains a new password'), h('p', { class: 'small' }, `A device credential for “${answer.credential.device}” was created. The QR code and the file below hold its password; they are shown only now.`))
        : h('p', { class: 'notice info' }, 'Without a credential the app asks for your password after the import.'),
      h('div', { class: 'qr-wrap' }, qrCanvas(answer.inline_url, 320, `QR code with the OwnTracks configuration for ${device.value}`)),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', class: 'primary', id: 'download-otrc', onclick: () => saveBlob(new Blob([text], { type: 'application/json' }), answer.file_name) }, `Download ${answer.file_name}`),
        h('a', { class: 'button', href: answer.inline_url }, 'Open in OwnTracks (on the phone)'),
      ),
      h('p', { class: 'muted small' }, 'Scan with the OwnTracks app (Android: Settings → Configuration management → Import; iOS: scan with the camera) or open the file on the phone.'),
    );
  });
  return section('Provision a phone', form, result);
}
