// Commands: the form (name + parameters as JSON, checked here before sending; the server's
// 400 shown at the field it names), used for one device and for a fleet, and a device's
// command history with status badges.

import { h, replace, uid } from '../lib/dom';
import { field, input, notice, table } from '../lib/ui';
import { commandBadge, compactJson, fieldErrors, parseParameters, relative } from './util';
import type { IotCommand } from './types';

/** Command names worth offering; the device decides what it understands. */
const COMMON = ['ping', 'reboot', 'blink', 'set-interval', 'update-config'];

export interface CommandForm {
  form: HTMLFormElement;
  status: ReturnType<typeof notice>;
  command: HTMLInputElement;
  parameters: HTMLTextAreaElement;
  /** Offers these names too (those sent before). */
  suggest(names: string[]): void;
}

/**
 * A command form; `send` gets the checked name and parameters and says what happened. The
 * inputs keep their values after sending (the same command is often sent again).
 */
export function commandForm(options: {
  id: string;
  submit: string;
  before?: HTMLElement[];
  send: (command: string, parameters: Record<string, unknown>) => Promise<string>;
}): CommandForm {
  const status = notice();
  const listId = uid('commands');
  const datalist = h('datalist', { id: listId });
  const command = input({ name: 'command', required: true, maxlength: 64, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', list: listId, placeholder: 'reboot' });
  const parameters = h('textarea', { name: 'parameters', rows: 3, spellcheck: 'false', class: 'mono', placeholder: '{"delay": 5}' });
  const button = h('button', { type: 'submit', class: 'primary' }, options.submit);
  const form = h(
    'form',
    { id: options.id, class: 'command-form', novalidate: true },
    options.before ?? [],
    field('Command', command, 'Letters, digits, - _ . (the last topic level)'),
    field('Parameters (JSON object, optional)', parameters),
    datalist,
    h('div', { class: 'actions' }, button),
    status.element,
  );
  const errors = fieldErrors({ command, parameters }, status);
  const suggest = (names: string[]): void => {
    const all = [...new Set([...names, ...COMMON])];
    replace(datalist, all.map((name) => h('option', { value: name })));
  };
  suggest([]);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    errors.clear();
    status.clear();
    const name = command.value.trim();
    if (!name) {
      errors.mark('command', 'Enter a command name.');
      return;
    }
    const parsed = parseParameters(parameters.value);
    if (!parsed.ok) {
      errors.mark('parameters', parsed.error);
      return;
    }
    button.disabled = true;
    options
      .send(name, parsed.value)
      .then((text) => status.show('success', text))
      .catch((error: unknown) => errors.show(error))
      .finally(() => (button.disabled = false));
  });
  return { form, status, command, parameters, suggest };
}

/** A device's commands, newest first: name and parameters, status, when, the answer. */
export function historyTable(commands: IotCommand[]): HTMLElement {
  return table(
    ['Command', 'Status', 'Sent', 'Response'],
    commands.map((c) => [
      h(
        'span',
        { class: 'command-cell', 'data-command-id': c.command_id },
        h('strong', {}, c.command),
        c.group ? h('span', { class: 'muted small' }, ` (fleet ${c.group})`) : null,
        isEmpty(c.parameters) ? null : h('code', { class: 'json small' }, compactJson(c.parameters, 160)),
      ),
      h(
        'span',
        { class: 'status-cell' },
        commandBadge(c.status),
        c.acknowledged_at ? h('span', { class: 'muted small' }, ' ', relative(c.acknowledged_at)) : c.delivered_at ? h('span', { class: 'muted small' }, ' ', relative(c.delivered_at)) : null,
      ),
      relative(c.created_at),
      c.response === null || c.response === undefined ? h('span', { class: 'muted' }, '—') : h('code', { class: 'json small response' }, compactJson(withoutId(c.response), 200)),
    ]),
    'No commands sent yet.',
  );
}

function isEmpty(value: unknown): boolean {
  return value === null || value === undefined || (typeof value === 'object' && Object.keys(value).length === 0);
}

/** The device's answer without the `command_id` it has to repeat. */
function withoutId(response: unknown): unknown {
  if (response && typeof response === 'object' && !Array.isArray(response)) {
    const { command_id: _, ...rest } = response as Record<string, unknown>;
    return Object.keys(rest).length ? rest : response;
  }
  return response;
}
