// Leaflet set up the same way for every map: tiles and attribution from the server's
// `[web]` settings, and the default marker images bundled (Leaflet would otherwise guess their
// URLs from its CSS, which breaks once the bundler renames them).

import * as L from 'leaflet';
import 'leaflet/dist/leaflet.css';
import iconUrl from 'leaflet/dist/images/marker-icon.png';
import iconRetinaUrl from 'leaflet/dist/images/marker-icon-2x.png';
import shadowUrl from 'leaflet/dist/images/marker-shadow.png';
import { boot } from './boot';

L.Icon.Default.mergeOptions({ iconUrl, iconRetinaUrl, shadowUrl, imagePath: '' });
// Leaflet prefixes `imagePath` when it finds one in its CSS; these URLs are complete already.
delete (L.Icon.Default.prototype as unknown as { _getIconUrl?: unknown })._getIconUrl;

/** A map in `container`, showing the world until the page fits it to something. */
export function createMap(container: HTMLElement): L.Map {
  const map = L.map(container, { zoomControl: true, worldCopyJump: true }).setView([30, 0], 2);
  L.tileLayer(boot.tile_url, {
    maxZoom: 19,
    attribution: boot.tile_attribution,
  }).addTo(map);
  return map;
}

export { L };
