// /about/ — About & Setup: version, this server's actual endpoints, OwnTracks instructions for
// each mode, and one-scan provisioning (QR code and .otrc download).

import '../styles/about.css';
import { layout } from '../lib/layout';
import { h } from '../lib/dom';
import { get } from '../lib/api';
import { boot } from '../lib/boot';
import { message, notice, section } from '../lib/ui';
import { endpointsSection, instructionsSection } from '../about/endpoints';
import { provisionSection } from '../about/provision';
import type { Setup } from '../lib/types';

const main = layout();
const status = notice();
main.append(
  h('h1', {}, 'About & Setup'),
  section(
    'About',
    h('p', {}, h('strong', {}, `mytracks ${boot.version}`), ': a self-hosted location server for OwnTracks phones, with its own MQTT broker, in one program.'),
    h('p', { class: 'small' }, 'The REST API is described in ', h('a', { href: '/api/openapi.json' }, '/api/openapi.json'), '.'),
  ),
  status.element,
);

get<Setup>('/api/setup/')
  .then((setup) => main.append(endpointsSection(setup), provisionSection(setup), instructionsSection(setup)))
  .catch((error: unknown) => status.show('error', message(error)));
