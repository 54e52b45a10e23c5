// Draws a QR code on a canvas (qrcode-generator computes the modules), with the quiet zone
// scanners need and whole-pixel modules so it stays sharp.

import qrcode from 'qrcode-generator';
import { h } from '../lib/dom';

/** A canvas showing `text` as a QR code about `size` pixels wide. */
export function qrCanvas(text: string, size: number, label: string): HTMLCanvasElement {
  const qr = qrcode(0, 'M');
  qr.addData(text, 'Byte');
  qr.make();
  const modules = qr.getModuleCount();
  const quiet = 4;
  const cell = Math.max(2, Math.floor(size / (modules + 2 * quiet)));
  const pixels = (modules + 2 * quiet) * cell;
  const canvas = h('canvas', { width: pixels, height: pixels, class: 'qr', role: 'img', 'aria-label': label });
  const context = canvas.getContext('2d');
  if (!context) return canvas;
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, pixels, pixels);
  context.fillStyle = '#000000';
  for (let row = 0; row < modules; row += 1) {
    for (let col = 0; col < modules; col += 1) {
      if (qr.isDark(row, col)) context.fillRect((col + quiet) * cell, (row + quiet) * cell, cell, cell);
    }
  }
  return canvas;
}
