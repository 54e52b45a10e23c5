// /profile/ — everything about one's own account, in cards.

import { layout } from '../lib/layout';
import { h } from '../lib/dom';
import { accountSection, deleteAccountSection, passwordSection } from '../profile/account';
import { credentialsSection, tokensSection } from '../profile/tokens';
import { sharingSection } from '../profile/sharing';
import { devicesSection } from '../profile/devices';
import { certificateSection } from '../profile/certificate';
import { exportSection } from '../profile/export';
import { importSection } from '../profile/imports';

const main = layout();
main.append(
  h('h1', {}, 'Profile'),
  h('div', { class: 'grid two' }, accountSection(), passwordSection()),
  devicesSection(),
  credentialsSection(),
  tokensSection(),
  sharingSection(),
  certificateSection(),
  importSection(),
  exportSection(),
  deleteAccountSection(),
);
