// Form building blocks shared by the pages: labelled fields, password fields with a show/hide
// toggle, status messages, one-time secrets, toasts.

import { h, uid, type Attrs } from './dom';
import { ApiError } from './api';

/** A label above an input; the input's id ties them together. */
export function field(label: string, input: HTMLElement, hint?: string): HTMLDivElement {
  if (!input.id) input.id = uid('f');
  const wrap = h('div', { class: 'field' }, h('label', { for: input.id }, label));
  if (hint) {
    const hintId = uid('hint');
    input.setAttribute('aria-describedby', hintId);
    wrap.append(input, h('span', { class: 'muted small', id: hintId }, hint));
  } else {
    wrap.append(input);
  }
  return wrap;
}

/** A text-like input. */
export function input(attrs: Attrs): HTMLInputElement {
  return h('input', { type: 'text', ...attrs });
}

/** A checkbox with its label to the right. */
export function checkbox(label: string, attrs: Attrs = {}): { wrap: HTMLDivElement; box: HTMLInputElement } {
  const box = h('input', { type: 'checkbox', id: uid('c'), ...attrs });
  return { wrap: h('div', { class: 'check' }, box, h('label', { for: box.id }, label)), box };
}

/** A password input with a Show/Hide button (the button says what it does and its state). */
export function passwordField(
  label: string,
  attrs: Attrs,
): { wrap: HTMLDivElement; input: HTMLInputElement } {
  const control = h('input', { type: 'password', id: uid('pw'), spellcheck: 'false', ...attrs });
  const toggle = h(
    'button',
    {
      type: 'button',
      class: 'toggle-password',
      'aria-controls': control.id,
      'aria-pressed': 'false',
      'aria-label': `Show ${label.toLowerCase()}`,
    },
    'Show',
  );
  toggle.addEventListener('click', () => {
    const show = control.type === 'password';
    control.type = show ? 'text' : 'password';
    toggle.textContent = show ? 'Hide' : 'Show';
    toggle.setAttribute('aria-pressed', String(show));
    toggle.setAttribute('aria-label', `${show ? 'Hide' : 'Show'} ${label.toLowerCase()}`);
  });
  const wrap = h(
    'div',
    { class: 'field' },
    h('label', { for: control.id }, label),
    h('div', { class: 'password' }, control, toggle),
  );
  return { wrap, input: control };
}

/** A message area: `show('error', text)`; empty hides it. Errors are announced at once. */
export function notice(): { element: HTMLDivElement; show: (kind: 'error' | 'success' | 'info', text: string) => void; clear: () => void } {
  const element = h('div', { class: 'notice', role: 'status', 'aria-live': 'polite' });
  return {
    element,
    show(kind, text) {
      element.className = `notice ${kind}`;
      element.setAttribute('role', kind === 'error' ? 'alert' : 'status');
      element.textContent = text;
    },
    clear() {
      element.className = 'notice';
      element.textContent = '';
    },
  };
}

/** A readable message for anything a request can throw. */
export function message(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * Runs `action` for a form submission: the submit button is disabled meanwhile and errors
 * land in `status`.
 */
export function onSubmit(
  form: HTMLFormElement,
  status: ReturnType<typeof notice>,
  action: () => Promise<void>,
): void {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll<HTMLButtonElement>('button[type=submit]');
    buttons.forEach((b) => (b.disabled = true));
    status.clear();
    action()
      .catch((error: unknown) => status.show('error', message(error)))
      .finally(() => buttons.forEach((b) => (b.disabled = false)));
  });
}

/** Copies text, saying so on the button. */
export function copyButton(text: string, label = 'Copy'): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'small' }, label);
  button.addEventListener('click', () => {
    navigator.clipboard
      .writeText(text)
      .then(() => (button.textContent = 'Copied'))
      .catch(() => (button.textContent = 'Select and copy by hand'));
  });
  return button;
}

/** A secret shown once (a token, a password), with the warning that it will not be shown again. */
export function secretBox(title: string, items: [string, string][]): HTMLDivElement {
  return h(
    'div',
    { class: 'secret', role: 'alert' },
    h('strong', {}, title),
    h('p', { class: 'small' }, 'Copy it now: it is shown only this once and cannot be retrieved later.'),
    items.map(([label, value]) =>
      h('div', { class: 'value' }, h('span', { class: 'label' }, `${label}:`), h('code', { class: 'secret-value' }, value), copyButton(value)),
    ),
  );
}

let toastArea: HTMLDivElement | null = null;
/** A short message at the bottom of the screen. */
export function toast(text: string): void {
  if (!toastArea) {
    toastArea = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(toastArea);
  }
  const item = h('div', { class: 'toast' }, text);
  toastArea.append(item);
  setTimeout(() => item.remove(), 4000);
}

/**
 * A table from headers and rows of cells. On a phone each row becomes a card whose cells carry
 * their column's name (`data-label`, shown by the CSS), so nothing needs sideways scrolling.
 */
export function table(headers: string[], rows: (Node | string)[][], empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'muted' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'stack' },
      h('thead', {}, h('tr', {}, headers.map((name) => h('th', { scope: 'col' }, name)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, i) => h('td', { 'data-label': headers[i] || null }, cell))))),
    ),
  );
}

/** A card with a heading, labelled by it for screen readers. */
export function section(title: string, ...children: HTMLElement[]): HTMLElement {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'card', 'aria-labelledby': id, id: `${id}-section` }, h('h2', { id }, title), ...children);
}

/** A small button that runs `action`, disabled while it runs; errors go to `status`. */
export function actionButton(
  text: string,
  status: ReturnType<typeof notice>,
  action: () => Promise<void>,
  attrs: Attrs = {},
): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'small', ...attrs }, text);
  button.addEventListener('click', () => {
    button.disabled = true;
    status.clear();
    action()
      .catch((error: unknown) => status.show('error', message(error)))
      .finally(() => (button.disabled = false));
  });
  return button;
}
