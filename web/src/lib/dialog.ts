// Modal dialogs on the native <dialog> element (focus trapping, Escape and the backdrop come
// with it): confirmations and small forms.

import { h } from './dom';

/** Asks before something irreversible; resolves to whether the person confirmed. */
export function confirmDialog(options: {
  title: string;
  message: string | Node;
  confirm: string;
  danger?: boolean;
}): Promise<boolean> {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'button', class: options.danger ? 'primary danger' : 'primary' }, options.confirm);
    const no = h('button', { type: 'button' }, 'Cancel');
    const dialog = h(
      'dialog',
      { 'aria-labelledby': 'confirm-title', class: 'confirm' },
      h('h2', { id: 'confirm-title' }, options.title),
      typeof options.message === 'string' ? h('p', {}, options.message) : options.message,
      h('div', { class: 'actions' }, no, yes),
    );
    let answer = false;
    yes.addEventListener('click', () => {
      answer = true;
      dialog.close();
    });
    no.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();
  });
}

/**
 * A dialog around a form. `submit` runs on submission; when it resolves the dialog closes,
 * when it throws the dialog stays open (the form shows the error itself).
 */
export function formDialog(title: string, form: HTMLFormElement, submit: () => Promise<void>): void {
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const titleId = `dialog-${Math.random().toString(36).slice(2)}`;
  const dialog = h('dialog', { 'aria-labelledby': titleId }, h('h2', { id: titleId }, title), form);
  form.querySelector('.actions')?.prepend(cancel);
  cancel.addEventListener('click', () => dialog.close());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit()
      .then(() => dialog.close())
      .catch(() => undefined);
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
