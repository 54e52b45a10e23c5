// /admin-panel/ — for admins (the server refuses others): tabs Users and PKI. The tab shows
// in the URL (#users, #pki) so a reload stays put.

import { layout } from '../lib/layout';
import { h, replace } from '../lib/dom';
import { usersTab } from '../admin/users';
import { pkiTab } from '../admin/pki';

const main = layout();
main.append(h('h1', {}, 'Admin panel'));

const tabs = [
  { id: 'users', label: 'Users', build: usersTab },
  { id: 'pki', label: 'PKI', build: pkiTab },
];
const list = h('div', { role: 'tablist', 'aria-label': 'Admin sections' });
const panels = new Map<string, HTMLElement>();
const buttons = new Map<string, HTMLButtonElement>();

let current = '';

function select(id: string, focus = false): void {
  for (const tab of tabs) {
    const on = tab.id === id;
    const button = buttons.get(tab.id)!;
    button.setAttribute('aria-selected', String(on));
    button.tabIndex = on ? 0 : -1;
    let panel = panels.get(tab.id);
    if (on && !panel) {
      panel = h('div', { role: 'tabpanel', id: `panel-${tab.id}`, 'aria-labelledby': `tab-${tab.id}` });
      panels.set(tab.id, panel);
      main.append(panel);
    }
    if (on && panel && current !== id) {
      // Built each time the tab is shown: the data is fresh (a certificate issued on the Users
      // tab is on the PKI tab), and a tab's requests wait until someone looks.
      replace(panel, tab.build());
    }
    if (panel) panel.hidden = !on;
    if (on && focus) button.focus();
  }
  current = id;
  history.replaceState(null, '', `#${id}`);
}

tabs.forEach((tab, index) => {
  const button = h('button', { type: 'button', role: 'tab', id: `tab-${tab.id}`, 'aria-controls': `panel-${tab.id}` }, tab.label);
  button.addEventListener('click', () => select(tab.id));
  button.addEventListener('keydown', (event) => {
    const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
    if (step === 0) return;
    const next = tabs[(index + step + tabs.length) % tabs.length]!;
    select(next.id, true);
  });
  buttons.set(tab.id, button);
  list.append(button);
});
main.append(list);
const fromHash = (): string => (location.hash === '#pki' ? 'pki' : 'users');
window.addEventListener('hashchange', () => select(fromHash()));
select(fromHash());
