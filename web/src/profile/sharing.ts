// Profile: sharing. Who may see my locations (live only, or with history), and who shares
// with me (which I may decline).

import { h, replace } from '../lib/dom';
import { del, get, post } from '../lib/api';
import { confirmDialog } from '../lib/dialog';
import { dateTime } from '../lib/format';
import { actionButton, checkbox, field, input, notice, onSubmit, section, table } from '../lib/ui';
import type { Share } from '../lib/types';

export function sharingSection(): HTMLElement {
  const status = notice();
  const outgoing = h('div', { id: 'shares-outgoing' });
  const incoming = h('div', { id: 'shares-incoming' });
  const refresh = async (): Promise<void> => {
    const shares = await get<Share[]>('/api/account/shares/');
    const remove = (s: Share, text: string, question: string): HTMLButtonElement =>
      actionButton(text, status, async () => {
        if (!(await confirmDialog({ title: `${text}?`, message: question, confirm: text, danger: true }))) return;
        await del(`/api/account/shares/${s.id}/`);
        await refresh();
      }, { class: 'small danger' });
    replace(
      outgoing,
      table(
        ['Shared with', 'History', 'Since', ''],
        shares
          .filter((s) => s.direction === 'outgoing')
          .map((s) => [s.viewer, s.history ? 'yes' : 'live only', dateTime(s.created_at), remove(s, 'Stop sharing', `${s.viewer} will no longer see your locations.`)]),
        'You share with nobody.',
      ),
    );
    replace(
      incoming,
      table(
        ['Shared by', 'History', 'Since', ''],
        shares
          .filter((s) => s.direction === 'incoming')
          .map((s) => [s.owner, s.history ? 'yes' : 'live only', dateTime(s.created_at), remove(s, 'Decline', `You will no longer see ${s.owner}'s locations.`)]),
        'Nobody shares with you.',
      ),
    );
  };
  const username = input({ name: 'username', required: true, autocapitalize: 'none' });
  const history = checkbox('Also let them see my history', { name: 'history' });
  const form = h(
    'form',
    { id: 'share-form' },
    h('div', { class: 'row' }, field('Username', username), h('button', { type: 'submit', class: 'primary' }, 'Share my locations')),
    history.wrap,
  );
  onSubmit(form, status, async () => {
    await post('/api/account/shares/', { username: username.value.trim(), history: history.box.checked });
    form.reset();
    status.show('success', 'Shared.');
    await refresh();
  });
  refresh().catch((e: unknown) => status.show('error', String(e)));
  return section('Sharing', h('h3', {}, 'I share with'), outgoing, form, h('h3', {}, 'Shared with me'), incoming, status.element);
}
