#!/usr/bin/env node
/**
 * Writes a synthetic infrared/visible pair (a dusk road scene with a pedestrian who is hard
 * to see in the visible image and hot in the infrared one) for trying `dif-fuse`:
 *
 *   node scripts/make-sample-pair.mjs [OUTDIR] [--width W] [--height H] [--pairs N]
 *
 * Writes OUTDIR/ir.png (8-bit gray) and OUTDIR/vi.png (8-bit RGB); OUTDIR defaults to
 * `samples`. With --pairs N it also writes OUTDIR/pairs/{ir,vi}/sample-<i>.png, N variations
 * for `dif-fuse --pairs`. Pure Node (zlib plus a 30-line PNG encoder, so it runs before any
 * workspace package is installed or built); deterministic: same arguments, same bytes.
 * The images are drawn from gradients and shapes; no dataset image is involved.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { deflateSync } from 'node:zlib';

// ---------- tiny PNG encoder ----------
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** data: Uint8Array, interleaved, channels 1 (gray) or 3 (RGB). */
export function encodePng(data, width, height, channels) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = channels === 1 ? 0 : 2;
  ihdr[10] = 0;
  ihdr[11] = 0;
  ihdr[12] = 0;
  const stride = width * channels;
  const raw = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0;
    raw.set(data.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

// ---------- deterministic noise ----------
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const clamp = (v, lo, hi) => (v < lo ? lo : Math.min(v, hi));
const mix = (a, b, t) => a + (b - a) * t;
const smooth = (e0, e1, x) => {
  const t = clamp((x - e0) / (e1 - e0), 0, 1);
  return t * t * (3 - 2 * t);
};

/**
 * Draws one scene. Every shape is a signed "coverage" function so the edges are anti-aliased.
 * Returns { vis: Uint8Array (RGB), ir: Uint8Array (gray) }.
 */
export function drawScene(width, height, variant = 0) {
  const rnd = mulberry32(1234 + variant * 7919);
  const vis = new Uint8Array(width * height * 3);
  const ir = new Uint8Array(width * height);
  const s = width / 400; // scale every shape with the image
  const horizon = height * 0.45;
  const vanishX = width * (0.5 + 0.06 * Math.sin(variant * 1.7));
  const pedX = width * (0.3 + 0.35 * ((variant * 0.37) % 1));
  const pedFoot = height * 0.86;
  const pedH = height * 0.36;
  const carX = width * (0.68 - 0.2 * ((variant * 0.53) % 1));
  const carY = height * 0.62;
  const buildings = [];
  for (let i = 0; i < 7; i++) {
    const bx = (i / 7) * width + rnd() * 20 * s;
    buildings.push({
      x0: bx,
      x1: bx + (30 + rnd() * 40) * s,
      top: horizon - (30 + rnd() * 80) * s,
      shade: 0.25 + rnd() * 0.25,
      heat: 0.35 + rnd() * 0.2,
      windows: rnd() > 0.4,
    });
  }
  const trees = [];
  for (let i = 0; i < 5; i++)
    trees.push({
      x: rnd() * width,
      y: horizon - (5 + rnd() * 15) * s,
      r: (12 + rnd() * 14) * s,
    });

  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // sky: dusk gradient; ground: dark asphalt and verge
      let r;
      let g;
      let b;
      let t;
      if (y < horizon) {
        const k = y / horizon;
        r = mix(0.32, 0.78, k);
        g = mix(0.38, 0.55, k);
        b = mix(0.62, 0.45, k);
        t = mix(0.05, 0.15, k);
      } else {
        const k = (y - horizon) / (height - horizon);
        r = mix(0.22, 0.12, k);
        g = mix(0.26, 0.16, k);
        b = mix(0.18, 0.1, k);
        t = mix(0.35, 0.45, k);
        // road trapezoid towards the vanishing point
        const halfW = mix(4 * s, width * 0.45, k);
        const dx = Math.abs(x - mix(vanishX, width * 0.5, k));
        const onRoad = 1 - smooth(halfW - 1, halfW + 1, dx);
        r = mix(r, 0.2, onRoad);
        g = mix(g, 0.2, onRoad);
        b = mix(b, 0.22, onRoad);
        t = mix(t, 0.55, onRoad);
        // dashed centre line
        const dash = Math.sin(Math.log(1 + k * 20) * 12) > 0 ? 1 : 0;
        const lineW = mix(0.5, 4, k) * s;
        const onLine = (1 - smooth(lineW - 0.7, lineW + 0.7, dx)) * dash * onRoad;
        r = mix(r, 0.85, onLine);
        g = mix(g, 0.85, onLine);
        b = mix(b, 0.8, onLine);
        t = mix(t, 0.5, onLine);
      }
      // buildings with lit windows (bright in visible, mildly warm in infrared)
      for (const bl of buildings) {
        if (x >= bl.x0 && x < bl.x1 && y >= bl.top && y < horizon) {
          r = bl.shade;
          g = bl.shade * 0.95;
          b = bl.shade * 1.05;
          t = bl.heat;
          if (bl.windows) {
            const wx = (x - bl.x0) % (10 * s);
            const wy = (y - bl.top) % (12 * s);
            if (wx > 3 * s && wx < 7 * s && wy > 3 * s && wy < 8 * s) {
              r = 0.95;
              g = 0.85;
              b = 0.5;
              t = bl.heat + 0.1;
            }
          }
        }
      }
      // trees: green in visible, cool in infrared
      for (const tr of trees) {
        const d = Math.hypot(x - tr.x, y - tr.y);
        const c = 1 - smooth(tr.r - 1, tr.r + 1, d);
        r = mix(r, 0.12, c);
        g = mix(g, 0.35, c);
        b = mix(b, 0.12, c);
        t = mix(t, 0.25, c);
      }
      // car: red body, dark windows; warm bonnet and tyres in infrared
      {
        const cw = 70 * s;
        const ch = 26 * s;
        const inBody = x > carX && x < carX + cw && y > carY && y < carY + ch;
        const inCab = x > carX + 15 * s && x < carX + cw - 15 * s && y > carY - 14 * s && y <= carY;
        if (inBody || inCab) {
          r = 0.6;
          g = 0.08;
          b = 0.1;
          t = 0.5 + 0.3 * (1 - (x - carX) / cw);
          if (inCab) {
            r = 0.1;
            g = 0.12;
            b = 0.16;
            t = 0.45;
          }
        }
        for (const wx of [carX + 14 * s, carX + cw - 14 * s]) {
          const d = Math.hypot(x - wx, y - (carY + ch));
          const c = 1 - smooth(7 * s - 1, 7 * s + 1, d);
          r = mix(r, 0.05, c);
          g = mix(g, 0.05, c);
          b = mix(b, 0.05, c);
          t = mix(t, 0.8, c);
        }
      }
      // pedestrian: nearly invisible dark figure in the visible image, hot in the infrared
      {
        const u = (x - pedX) / pedH;
        const v = (pedFoot - y) / pedH; // 0 at the feet, 1 at the top of the head
        const head = Math.hypot(u, v - 0.9) < 0.075;
        const torso = Math.abs(u) < 0.11 - 0.02 * (v - 0.45) && v > 0.45 && v < 0.82;
        const legs = v >= 0 && v <= 0.46 && Math.abs(Math.abs(u) - 0.05 - 0.05 * (0.46 - v)) < 0.04;
        const arms = v > 0.45 && v < 0.8 && Math.abs(Math.abs(u) - 0.15 + 0.08 * (v - 0.45)) < 0.03;
        if (head || torso || legs || arms) {
          r = mix(r, 0.16, 0.8);
          g = mix(g, 0.17, 0.8);
          b = mix(b, 0.2, 0.8);
          t = head ? 0.98 : 0.88;
        }
      }
      // haze in the visible image lowers its contrast; sensor noise in both
      const haze = 0.25 * smooth(height * 0.2, height * 0.9, y);
      r = mix(r, 0.45, haze) + (rnd() - 0.5) * 0.03;
      g = mix(g, 0.45, haze) + (rnd() - 0.5) * 0.03;
      b = mix(b, 0.47, haze) + (rnd() - 0.5) * 0.03;
      t += (rnd() - 0.5) * 0.04;
      const i = y * width + x;
      vis[i * 3] = Math.round(clamp(r, 0, 1) * 255);
      vis[i * 3 + 1] = Math.round(clamp(g, 0, 1) * 255);
      vis[i * 3 + 2] = Math.round(clamp(b, 0, 1) * 255);
      ir[i] = Math.round(clamp(t, 0, 1) * 255);
    }
  }
  return { vis, ir };
}

function parseArgs(argv) {
  const opts = { out: 'samples', width: 400, height: 300, pairs: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) {
        console.error(`make-sample-pair: ${a} needs a positive integer`);
        process.exit(2);
      }
      return v;
    };
    if (a === '--width') opts.width = next();
    else if (a === '--height') opts.height = next();
    else if (a === '--pairs') opts.pairs = next();
    else if (a.startsWith('-')) {
      console.error(`make-sample-pair: unknown option ${a}`);
      process.exit(2);
    } else opts.out = a;
  }
  return opts;
}

function main() {
  const { out, width, height, pairs } = parseArgs(process.argv.slice(2));
  const dir = resolve(out);
  mkdirSync(dir, { recursive: true });
  const { vis, ir } = drawScene(width, height, 0);
  writeFileSync(join(dir, 'ir.png'), encodePng(ir, width, height, 1));
  writeFileSync(join(dir, 'vi.png'), encodePng(vis, width, height, 3));
  if (pairs > 0) {
    mkdirSync(join(dir, 'pairs', 'ir'), { recursive: true });
    mkdirSync(join(dir, 'pairs', 'vi'), { recursive: true });
    for (let k = 0; k < pairs; k++) {
      const p = drawScene(width, height, k + 1);
      const name = `sample-${String(k + 1).padStart(2, '0')}.png`;
      writeFileSync(join(dir, 'pairs', 'ir', name), encodePng(p.ir, width, height, 1));
      writeFileSync(join(dir, 'pairs', 'vi', name), encodePng(p.vis, width, height, 3));
    }
  }
  console.log(
    `wrote ${join(out, 'ir.png')} and ${join(out, 'vi.png')} (${width}x${height})${pairs ? ` and ${pairs} pairs in ${join(out, 'pairs')}` : ''}`,
  );
}

if (
  import.meta.url === `file://${process.argv[1]}` ||
  process.argv[1]?.endsWith('make-sample-pair.mjs')
)
  main();
